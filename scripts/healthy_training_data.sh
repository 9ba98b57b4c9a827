# Sourced by the build scripts of the shipped networks (build_default_model.sh,
# build_itermask_model.sh), so both train on exactly the same healthy studies: 6 generated
# phantoms (seed 2026) and the real errsm_11, errsm_18 and errsm_21 with their manual cord masks.
# Expects PY, REALSPINE and BUILD; writes $BUILD/phantoms/manifest.csv and $BUILD/realspine_train.csv.
if [ ! -f "$REALSPINE/SOURCES.md" ]; then
    echo "real spine data not found at $REALSPINE (set U2AD_REALSPINE)" >&2
    exit 2
fi
mkdir -p "$BUILD"

"$PY" -m u2adcore --progress none phantom --out "$BUILD/phantoms" --n 6 --seed 2026 --lesions 0 --overwrite

"$PY" - "$REALSPINE" "$BUILD/realspine_train.csv" <<'PYEOF'
import sys
from pathlib import Path
from u2adcore.data.manifest import ManifestEntry, write_manifest

root, out = Path(sys.argv[1]), Path(sys.argv[2])
entries = [ManifestEntry(s, root / "sct_2014_errsm" / s / "t2.nii.gz", root / "sct_2014_errsm" / s / "t2_manual_segmentation.nii.gz")
           for s in ("errsm_11", "errsm_18", "errsm_21")]
write_manifest(entries, out)
PYEOF
