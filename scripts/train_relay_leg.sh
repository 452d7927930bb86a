#!/usr/bin/env bash
# One leg of the default model's training relay, in one command:
#
#   scripts/train_relay_leg.sh MINUTES [PHOTO_DIR]      (PHOTO_DIR default: ../shared/data/train)
#
# Continues resources/models/deepfill_v2.train-state.safetensors (the state the previous leg
# committed; trainer/relay.py) for MINUTES, or starts the model from scratch when there is
# none; then exports the EMA generator to resources/models/deepfill_v2.safetensors, writes the
# new relay state, evaluates on the shared eval pairs next to PatchMatch and Telea, updates
# the model card's training table and docs/learning_curve.md
# (scripts/publish_default_model.py). Commit resources/models/ and docs/ afterwards.
#
# The recipe (docs/training.md has the experiments behind it): DeepFill v2 at cnum 32,
# hole-weighted L1 (x6 in the hole), generator lr 4e-4 (D 1e-4; from leg 4 on 1e-4 / 2.5e-5,
# leg 10 2.5e-5 / 6.25e-6, from leg 11 on 1e-4 / 1e-4: carried in the relay state's
# configuration; A/B 6, A/B 11), Adam betas (0.5, 0.999),
# EMA 0.99, batch 4 at 256 px crops on a CPU (batch 8 at 128 px through leg 5; A/B 7: the
# larger crops hold holes as deep as the app's), bf16 where the CPU has it, fused gating. The
# first legs added an SN-PatchGAN term of weight 0.05; legs 3-10 trained without it (A/B 5:
# lower validation L1 at equal steps and 1.7x the images per minute, since the discriminator is
# then skipped; turned back on at 198k images, weight 0.05, with a discriminator that had not
# trained since leg 2, it painted a grid into smooth fills: A/B 9). Legs 11-12 added it at
# weight 0.01 with a warmed-up discriminator (A/B 11: hole L1 unchanged, a little more detail,
# no grid in 804 steps; A/B 12: weight 0.03 paints a grid within 684 steps); leg 13's 4,460
# steps at 0.01 grew one too, and were not shipped (docs/training.md). So a resumed leg trains
# on L1 alone again until a GAN phase is found that adds detail without a grid. Environment:
# SIZE [256; 128 from scratch, as legs 1-5 began], BATCH [4; 8 from scratch], WORKERS [1],
# DEVICE [auto], GAN_WEIGHT [0], D_WARMUP [0] (discriminator-only updates before the first
# generator step: give a GAN phase whose discriminator has not trained lately one that has
# caught up with the generator; leg 11 took 250), EVAL_LIMIT [all] (first N eval photos only),
# RUN [runs/default_model/leg-<UTC time>], TRAIN_ARGS [none] (more trainer options, e.g.
# "--lr-g 2.5e-5 --lr-d 6.25e-6": on a resume they replace the saved configuration's and are
# carried on in the relay state), PUBLISH_ARGS [none] (e.g. --any-cpu-cache on a CPU whose
# PatchMatch differs from the one that cached docs/quality_classical.json).
# On a GPU: SIZE=256 BATCH=64 WORKERS=8 scripts/train_relay_leg.sh 20
set -euo pipefail
# The whole body is one brace group, read before it runs: bash reads a script as it goes, so
# editing this file while a leg trains would otherwise run whatever lands at its old offset.
{
if [ "$#" -lt 1 ]; then
    echo "usage: $0 MINUTES [PHOTO_DIR]" >&2
    exit 2
fi
MINUTES=$1
DATA=${2:-../shared/data/train}
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
STATE=resources/models/deepfill_v2.train-state.safetensors
RUN=${RUN:-runs/default_model/leg-$(date -u +%Y%m%d-%H%M)}
if [ -f "$STATE" ]; then CROP=256 PHOTOS=4; else CROP=128 PHOTOS=8; fi
COMMON=(--data "$DATA" --out "$RUN" --size "${SIZE:-$CROP}" --batch-size "${BATCH:-$PHOTOS}"
        --workers "${WORKERS:-1}" --device "${DEVICE:-auto}" --max-minutes "$MINUTES"
        --gan-weight "${GAN_WEIGHT:-0}" --d-warmup-steps "${D_WARMUP:-0}" --steps 100000000
        --val-every 500 --log-every 50 --sample-every 1000 --ckpt-every 500)
read -r -a EXTRA <<< "${TRAIN_ARGS:-}"
read -r -a PUBLISH <<< "${PUBLISH_ARGS:-}"

if [ -f "$STATE" ]; then
    echo "== resuming the relay from $STATE for $MINUTES minutes -> $RUN"
    "$PYTHON" -m trainer train --resume "$STATE" "${COMMON[@]}" "${EXTRA[@]}"
else
    echo "== no relay state: training DeepFill v2 from scratch for $MINUTES minutes -> $RUN"
    "$PYTHON" -m trainer train --arch deepfill_v2 --gen-args '{"cnum": 32}' \
        --l1-hole-weight 6 --lr-g 4e-4 --ema-decay 0.99 --channels-last \
        --val-count 64 --title "DeepFill v2 (in training)" "${COMMON[@]}" "${EXTRA[@]}"
fi

LIMIT=()
[ -n "${EVAL_LIMIT:-}" ] && LIMIT=(--limit "$EVAL_LIMIT")
"$PYTHON" scripts/publish_default_model.py --run "$RUN" "${LIMIT[@]}" "${PUBLISH[@]}"
exit
}
