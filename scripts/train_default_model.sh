#!/usr/bin/env bash
# Retrain the shipped DeepFill v2 model from photo folders, in one command.
#
#   scripts/train_default_model.sh PHOTO_DIR [PHOTO_DIR ...]
#
# A new model from scratch (to continue the shipped one, use scripts/train_relay_leg.sh).
# Stage 1 trains DeepFill v2 (cnum 32, sketch channel with dropout, free-form + box masks,
# the recipe of docs/training.md: hole-weighted L1, GAN weight 0.05, lr 4e-4, EMA 0.99) at
# 256x256; stage 2 fine-tunes it at 512x512 (fresh discriminator) and exports the EMA
# generator as fp16 to resources/models/deepfill_v2.safetensors with its model card; stage 3
# evaluates it on the shared eval pairs when they are present. Running the script again
# continues a stage that was interrupted (from its last checkpoint).
#
# Uses every visible GPU (torchrun DDP when there are several), bf16 autocast and
# channels-last on GPU. Settings by environment variable (defaults in brackets):
#   GPUS [all visible, else 1 CPU process]   STEPS_256 [300000]   STEPS_512 [20000]
#   BATCH [32 per GPU at 256; a quarter at 512]   WORKERS [8]   MAX_MINUTES_256 [0 = no limit]
#   OUT [runs/default_model]   MODEL [resources/models/deepfill_v2.safetensors]
#   EVAL_DIR [../shared/data]   SMOKE=1: a CPU smoke run (a few tiny steps, small network,
#   model written under OUT instead of resources/) to check the pipeline end to end.
set -euo pipefail

if [ "$#" -lt 1 ]; then
    echo "usage: $0 PHOTO_DIR [PHOTO_DIR ...]" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

if [ "${SMOKE:-0}" = "1" ]; then
    OUT=${OUT:-runs/default_model_smoke}
    MODEL=${MODEL:-$OUT/deepfill_v2_smoke.safetensors}
    GPUS=1; STEPS_256=${STEPS_256:-4}; STEPS_512=${STEPS_512:-2}; BATCH=${BATCH:-2}
    WORKERS=${WORKERS:-0}; SIZE1=64; SIZE2=128; GEN_ARGS='{"cnum": 8}'; DEVICE=cpu
    EVERY=2; EXTRA=(--val-count 2)
else
    OUT=${OUT:-runs/default_model}
    MODEL=${MODEL:-resources/models/deepfill_v2.safetensors}
    if [ -z "${GPUS:-}" ]; then
        GPUS=$($PYTHON -c "import torch; print(max(torch.cuda.device_count(), 1))")
    fi
    STEPS_256=${STEPS_256:-300000}; STEPS_512=${STEPS_512:-20000}; BATCH=${BATCH:-32}
    WORKERS=${WORKERS:-8}; SIZE1=256; SIZE2=512; GEN_ARGS='{"cnum": 32}'; DEVICE=auto
    EVERY=1000; EXTRA=(--channels-last --val-count 64)
fi
BATCH2=$(( BATCH / 4 > 1 ? BATCH / 4 : 1 ))

if [ "$GPUS" -gt 1 ]; then
    LAUNCH=("$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$GPUS")
else
    LAUNCH=("$PYTHON")
fi

stage() {  # stage RUN_DIR ARGS...: start the run, or resume it when it has a checkpoint
    local run=$1; shift
    if [ -f "$run/last.pt" ]; then
        "${LAUNCH[@]}" -m trainer train --resume "$run" --steps "$STEPS_FOR_STAGE"
    else
        "${LAUNCH[@]}" -m trainer "$@" --out "$run"
    fi
}

echo "== stage 1: DeepFill v2 at ${SIZE1}px, $STEPS_256 steps, $GPUS process(es)"
STEPS_FOR_STAGE=$STEPS_256 stage "$OUT/stage1_${SIZE1}" train --arch deepfill_v2 \
    --gen-args "$GEN_ARGS" --data "$@" --size "$SIZE1" --batch-size "$BATCH" \
    --steps "$STEPS_256" --mask mixed --sketch-prob 0.5 --workers "$WORKERS" \
    --l1-hole-weight 6 --gan-weight 0.05 --lr-g 4e-4 --ema-decay 0.99 \
    --device "$DEVICE" --log-every "$EVERY" --val-every "$EVERY" --sample-every "$EVERY" \
    --ckpt-every "$EVERY" --max-minutes "${MAX_MINUTES_256:-0}" "${EXTRA[@]}"

STAGE1_MODEL="$OUT/stage1_${SIZE1}.safetensors"
"$PYTHON" -m trainer export --checkpoint "$OUT/stage1_${SIZE1}" --out "$STAGE1_MODEL" --fp32 \
    --title "DeepFill v2 (${SIZE1}px stage)"

echo "== stage 2: fine-tune at ${SIZE2}px, $STEPS_512 steps, export to $MODEL"
if [ -f "$OUT/stage2_${SIZE2}/last.pt" ]; then
    "${LAUNCH[@]}" -m trainer train --resume "$OUT/stage2_${SIZE2}" --steps "$STEPS_512"
    "$PYTHON" -m trainer export --checkpoint "$OUT/stage2_${SIZE2}" --out "$MODEL" \
        --title "DeepFill v2"
else
    "${LAUNCH[@]}" -m trainer finetune --init "$STAGE1_MODEL" --data "$@" \
        --out "$OUT/stage2_${SIZE2}" --size "$SIZE2" --batch-size "$BATCH2" \
        --steps "$STEPS_512" --lr-scale 0.5 --early-stop 0 --mask mixed --sketch-prob 0.5 \
        --workers "$WORKERS" --device "$DEVICE" --log-every "$EVERY" --val-every "$EVERY" \
        --sample-every "$EVERY" --ckpt-every "$EVERY" --export "$MODEL" \
        --title "DeepFill v2" "${EXTRA[@]}"
fi

EVAL_DIR=${EVAL_DIR:-../shared/data}
if [ -f "$EVAL_DIR/eval_pairs.tsv" ]; then
    echo "== stage 3: evaluation on $EVAL_DIR/eval_pairs.tsv"
    LIMIT=0; [ "${SMOKE:-0}" = "1" ] && LIMIT=4
    "$PYTHON" -m trainer evaluate --model "$MODEL" --data "$EVAL_DIR/eval" \
        --pairs "$EVAL_DIR/eval_pairs.tsv" --masks "$EVAL_DIR/masks" --limit "$LIMIT" \
        --json "$OUT/evaluation.json"
fi
echo "done: $MODEL"
