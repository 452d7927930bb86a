#!/usr/bin/env bash
# One leg of the default model's training relay ON A LENT GPU MACHINE (the device tool), run
# from the repository root there:
#
#   bash scripts/device_relay_leg.sh MINUTES
#
# Prepare here first: `python scripts/pack_device_data.py` (the photos in two parts that each
# fit a call). Then, back to back so that the machine stays warm and keeps the first part:
#   run(command="ls traindata/a | wc -l; nvidia-smi -L", carry=["traindata/a"], timeout_s=120)
#   run(command="bash scripts/device_relay_leg.sh 7", carry=["traindata/b"], timeout_s=600)
# and bring the leg home with `scripts/receive_device_leg.sh FILES_AT` (rejoins the checkpoint,
# exports, evaluates on the CPU and writes the card, as scripts/train_relay_leg.sh does).
#
# Resumes resources/models/deepfill_v2.train-state.safetensors on the GPU at 256 px crops,
# batch BATCH [64], WORKERS [8] loader processes, DEVICE [cuda; cpu for a dry run here], bf16
# autocast (--amp auto), for MINUTES, with GAN_WEIGHT [0] and D_WARMUP [0] as in
# train_relay_leg.sh and TRAIN_ARGS [none] for more options (e.g. "--lr-g 2e-4": carried on in
# the relay state, so a CPU leg after it must set its own rate back). If the first attempt dies
# before its first checkpoint (a compile failure on a stack never tried on a GPU before), it
# retries without the fused gating and without compile.
# Everything comes back under $OUT, at most 8 files of at most 16 MiB: the run's last.pt without
# Adam's moments, split into parts, its log.jsonl and config.json, the filtered console log and
# the GPU's name.
set -uo pipefail
{
MINUTES=${1:?usage: $0 MINUTES}
: "${OUT:?run this through the device tool, which sets OUT}"
PYTHON=${PYTHON:-python3}
RUN=/tmp/device_leg
export PYTHONUNBUFFERED=1
DATA=()
for part in traindata/*/; do
    [ -d "$part" ] && [ -n "$(ls -A "$part")" ] && DATA+=(--data "$part")
done
if [ "${#DATA[@]}" -eq 0 ]; then
    echo "no photos under traindata/: run scripts/pack_device_data.py and carry its parts" >&2
    exit 2
fi
echo "photo folders: ${DATA[*]} ($(find traindata -type f | wc -l) files)" | tee "$OUT/gpu.txt"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$OUT/gpu.txt" || true
read -r -a EXTRA <<< "${TRAIN_ARGS:-}"

attempt() {
    rm -rf "$RUN"
    "$PYTHON" -m trainer train --resume resources/models/deepfill_v2.train-state.safetensors \
        "${DATA[@]}" --out "$RUN" --size 256 --batch-size "${BATCH:-64}" \
        --workers "${WORKERS:-8}" --device "${DEVICE:-cuda}" --amp auto --max-minutes "$MINUTES" \
        --gan-weight "${GAN_WEIGHT:-0}" --d-warmup-steps "${D_WARMUP:-0}" --steps 100000000 \
        --val-every 200 --log-every 20 --sample-every 0 --ckpt-every 200 "${EXTRA[@]}" "$@" \
        2>&1 | tr '\r' '\n' | grep --line-buffered -v 'step/s\]$' | tee -a "$OUT/train.log"
}
attempt
status=$?
if [ "$status" -ne 0 ] && [ ! -f "$RUN/last.pt" ]; then
    echo "== first attempt failed ($status) before a checkpoint: retrying without fused gating / compile" \
        | tee -a "$OUT/train.log"
    attempt --no-fused-gating --no-compile
    status=$?
fi
if [ -f "$RUN/last.pt" ]; then
    # Adam's moments would double the transfer and no relay leg reads them (the relay state
    # drops them too: trainer/relay.py), so they stay behind.
    "$PYTHON" - "$RUN/last.pt" <<'PY'
import sys, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
state.update(opt_g=None, opt_d=None)
torch.save(state, sys.argv[1])
PY
    split -b 15m -d "$RUN/last.pt" "$OUT/last.pt.part"
    cp "$RUN/log.jsonl" "$RUN/config.json" "$OUT/"
    ls -l "$OUT"
fi
exit "$status"
}
