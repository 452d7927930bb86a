#!/usr/bin/env bash
# Bring home a relay leg trained on a lent GPU (scripts/device_relay_leg.sh):
#
#   scripts/receive_device_leg.sh FILES_AT [RUN]      (RUN default: runs/default_model/gpu-<UTC time>)
#
# FILES_AT is the folder the device tool's reply names (files_at). Rejoins the checkpoint from
# its parts into RUN/last.pt, copies the run's log and configuration, then exports, evaluates on
# the CPU and writes the card and the learning curve (scripts/publish_default_model.py, with
# PUBLISH_ARGS [none], e.g. --any-cpu-cache). Commit resources/models/ and docs/ afterwards.
set -euo pipefail
{
FILES=${1:?usage: $0 FILES_AT [RUN]}
cd "$(dirname "$0")/.."
RUN=${2:-runs/default_model/gpu-$(date -u +%Y%m%d-%H%M)}
PYTHON=${PYTHON:-python}
parts=("$FILES"/last.pt.part*)
if [ ! -f "${parts[0]}" ]; then
    echo "no last.pt.part* in $FILES: the leg wrote no checkpoint (see $FILES/train.log)" >&2
    exit 1
fi
mkdir -p "$RUN"
cat "${parts[@]}" > "$RUN/last.pt"
cp "$FILES"/log.jsonl "$FILES"/config.json "$RUN/"
[ -f "$FILES/train.log" ] && cp "$FILES/train.log" "$RUN/"
[ -f "$FILES/gpu.txt" ] && cp "$FILES/gpu.txt" "$RUN/"
echo "== $RUN/last.pt: $(stat -c %s "$RUN/last.pt") bytes from ${#parts[@]} parts"
read -r -a PUBLISH <<< "${PUBLISH_ARGS:-}"
"$PYTHON" scripts/publish_default_model.py --run "$RUN" "${PUBLISH[@]}"
exit
}
