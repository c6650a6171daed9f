"""Render the committed sample scans: tests/data/scans/NN_lang.png and ground_truth.json.

The set is small on purpose (eight Persian and four English pages of two to four everyday
sentences): enough to measure Tesseract's character error rate per language in a few seconds,
small enough (under 3 MB) to live in git. Every page has a fixed seed, noise level and skew,
so running this again on the same fonts and Pillow reproduces the same files; after a font or
Pillow upgrade the pixels may shift slightly, which is why the output is committed rather
than generated in CI.

Usage: python scripts/make_sample_scans.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from airflow_provider_delix.emulator.scans import embed_ground_truth, render_scan

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "scans"

# (language, lines, noise, skew in degrees). Persian uses Persian yeh (ی) and keheh (ک), a
# ZWNJ in compound verbs and words (می‌بارد, بزرگ‌تر) and Persian digits, as a careful typist
# would; the noise (0.02-0.035 of full scale) and skew (-1.2 to +1.2 degrees) vary like a stack
# of real office scans.
SAMPLES: list[tuple[str, list[str], float, float]] = [
    (
        "fa",
        [
            "امروز صبح هوا کمی سرد بود و باران می‌بارید.",
            "با اتوبوس به محل کار رفتم و یک چای داغ نوشیدم.",
        ],
        0.03,
        0.6,
    ),
    (
        "fa",
        [
            "خواهشمند است فردا ساعت نه صبح در جلسه حاضر باشید.",
            "گزارش ماه گذشته را هم با خودتان بیاورید.",
        ],
        0.025,
        -0.8,
    ),
    (
        "fa",
        [
            "قیمت نان و شیر این هفته دوباره بالا رفت.",
            "مادرم می‌گوید بهتر است از بازار محله خرید کنیم.",
            "آنجا میوه‌ها تازه‌تر و ارزان‌تر هستند.",
        ],
        0.035,
        1.1,
    ),
    (
        "fa",
        [
            "کتابخانه شهر از شنبه تا چهارشنبه باز است.",
            "برای امانت گرفتن کتاب، کارت عضویت لازم است.",
            "کودکان زیر دوازده سال باید همراه پدر یا مادر بیایند.",
        ],
        0.02,
        -0.4,
    ),
    (
        "fa",
        [
            "قطار تهران به مشهد ساعت هشت شب حرکت می‌کند.",
            "از مسافران خواهش می‌کنیم بلیت خود را همراه داشته باشند.",
        ],
        0.03,
        0.9,
    ),
    (
        "fa",
        [
            "سلام دوست عزیزم، امیدوارم حالت خوب باشد.",
            "تابستان امسال به روستای پدربزرگم رفتیم.",
            "باغ او پر از درخت‌های سیب و گیلاس بود.",
            "جای تو خیلی خالی بود.",
        ],
        0.025,
        -1.2,
    ),
    (
        "fa",
        [
            "فروشگاه ما هر روز از ساعت ۹ صبح تا ۹ شب باز است.",
            "برای سفارش تلفنی با شماره ۸۸۷۶۵۴۳۲ تماس بگیرید.",
        ],
        0.03,
        0.3,
    ),
    (
        "fa",
        [
            "پزشک گفت باید هر روز هشت لیوان آب بنوشم.",
            "داروها را بعد از غذا بخورید.",
            "اگر تب ادامه پیدا کرد، دوباره مراجعه کنید.",
        ],
        0.035,
        -0.6,
    ),
    (
        "en",
        [
            "The quarterly report is due next Friday.",
            "Please send your comments to the finance team.",
        ],
        0.03,
        0.7,
    ),
    (
        "en",
        [
            "Our office will be closed on Monday for maintenance.",
            "Visitors should use the side entrance on Elm Street.",
        ],
        0.025,
        -0.9,
    ),
    (
        "en",
        [
            "Store cooked rice in the fridge within one hour.",
            "Reheat it only once, until it is steaming hot.",
            "Throw away any leftovers after two days.",
        ],
        0.035,
        1.2,
    ),
    (
        "en",
        [
            "Dear Sara, thank you for the lovely flowers.",
            "We hope to see you again in the spring.",
            "Best wishes, Reza and family",
        ],
        0.02,
        -0.3,
    ),
]


def file_name(index: int, language: str) -> str:
    """``NN_lang.png``, numbered from 01 in SAMPLES order (the language suffix is what
    scripts/ocr_samples.py and the CER test group by)."""
    return f"{index:02d}_{language}.png"


def ground_truth() -> dict[str, str]:
    """File name -> expected text (lines joined by newlines), exactly as embedded in the PNGs."""
    return {file_name(i, lang): "\n".join(lines) for i, (lang, lines, _, _) in enumerate(SAMPLES, start=1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output directory (default {OUT})")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for index, (language, lines, noise, skew) in enumerate(SAMPLES, start=1):
        image = render_scan(lines, language, seed=index, noise=noise, skew_degrees=skew)
        data = embed_ground_truth(image, "\n".join(lines))
        path = out / file_name(index, language)
        path.write_bytes(data)
        total += len(data)
        print(f"{path.name}: {image.width}x{image.height}, {len(data) / 1024:.0f} KiB")
    (out / "ground_truth.json").write_text(
        json.dumps(ground_truth(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    print(f"{len(SAMPLES)} scans, {total / 1024 / 1024:.2f} MiB, in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
