"""OCR the committed sample scans through DelixHook and print the text (the README's first command).

Uses only the public hook API, five files per upload and per extraction, and deletes what
it uploaded; the connection comes from AIRFLOW_CONN_DELIX_DEFAULT (set by scripts/demo.sh).
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow_provider_delix.api.models import RejectedFile, StoredFile
from airflow_provider_delix.hooks.delix import DelixHook

SCANS = Path(__file__).resolve().parent.parent / "tests" / "data" / "scans"


def main() -> int:
    hook = DelixHook()
    scans = sorted(SCANS.glob("*.png"))
    if not scans:
        print(f"No sample scans in {SCANS}: run scripts/make_sample_scans.py", file=sys.stderr)
        return 1
    by_language: dict[str, list[Path]] = {}
    for scan in scans:
        by_language.setdefault(scan.stem.rsplit("_", 1)[-1], []).append(scan)
    for language, paths in sorted(by_language.items()):
        for start in range(0, len(paths), 5):
            chunk = paths[start : start + 5]
            results = hook.upload_files(chunk)
            stored = [(p, r) for p, r in zip(chunk, results, strict=True) if isinstance(r, StoredFile)]
            for path, result in zip(chunk, results, strict=True):
                if isinstance(result, RejectedFile):
                    print(f"== {path.name}: rejected ({result.reason})")
            try:
                if stored:
                    extract = hook.extract_images([r.uuid for _, r in stored], "danlin", language)
                    name_of = {result.uuid: path.name for path, result in stored}
                    for file in extract.files:
                        for page in file.pages or ():
                            print(f"== {name_of[file.uuid]} [{language}] page {page.number}: {page.status}")
                            print((page.text or "").strip())
            finally:
                for _, result in stored:
                    hook.delete_file(result.uuid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
