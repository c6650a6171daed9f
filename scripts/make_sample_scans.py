"""Render the committed sample scans: tests/data/scans/NN_lang.png and ground_truth.json.

The set is small on purpose (eight Persian and four English pages of two to four everyday
sentences): enough to measure Tesseract's character error rate per language in a few seconds,
small enough (under 3 MB) to live in git. Every page has a fixed seed, noise level and skew,
so running this again on the same fonts and Pillow reproduces the same files; after a font or
Pillow upgrade the pixels may shift slightly, which is why the output is committed rather
than generated in CI.

With ``--archive`` it writes the example DAG's sample archive instead (``dags/sample_archive/``):
these twelve texts plus eighteen more, rendered lighter (less noise, 16 grey levels, about
100 KB a page) so thirty pages fit in git, sorted into ``fa/`` and ``en/`` folders the way a
real archive is often sorted by language, plus the awkward files every real archive has: a
three-page TIFF, a page over the API's 2 MB limit and a damaged PNG. The expected texts go to
``_ground_truth.json`` (the leading ``_`` keeps it out of the operator's folder listing).

Usage: python scripts/make_sample_scans.py [--out DIR] [--archive]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from airflow_provider_delix.emulator.scans import (
    corrupt_png,
    embed_ground_truth,
    make_oversize_png,
    render_scan,
)

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "scans"
ARCHIVE_OUT = Path(__file__).resolve().parent.parent / "dags" / "sample_archive"

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


# More everyday pages for the sample archive only (the CER set above stays as measured).
ARCHIVE_EXTRA: list[tuple[str, list[str]]] = [
    ("fa", ["جلسه شورای محله پنجشنبه ساعت پنج عصر برگزار می‌شود.", "همه همسایه‌ها دعوت هستند."]),
    ("fa", ["لطفاً زباله‌ها را فقط شب‌ها بیرون بگذارید.", "ماشین شهرداری ساعت ده شب می‌آید."]),
    ("fa", ["آب ساختمان فردا از ساعت هشت تا دوازده قطع است.", "از صبر شما سپاسگزاریم."]),
    ("fa", ["کلاس نقاشی کودکان از مهر ماه شروع می‌شود.", "ثبت‌نام در دفتر فرهنگسرا انجام می‌شود."]),
    ("fa", ["نامه شما درباره تعمیر سقف به دست ما رسید.", "کارشناس ما هفته آینده برای بازدید می‌آید."]),
    ("fa", ["نمایشگاه کتاب امسال در محل همیشگی برپا می‌شود.", "ورود برای دانش‌آموزان رایگان است."]),
    ("fa", ["برای دریافت گذرنامه، شناسنامه و دو قطعه عکس لازم است.", "مدارک را در ساعت اداری تحویل دهید."]),
    ("fa", ["پرداخت قبض برق تا پایان این ماه مهلت دارد.", "پس از آن جریمه دیرکرد اضافه می‌شود."]),
    ("fa", ["باشگاه ورزشی محله سالن تازه‌ای افتتاح کرد.", "ساعت کار بانوان صبح‌ها است."]),
    ("fa", ["دانشجویان گرامی، امتحان پایان ترم یک هفته عقب افتاد.", "برنامه تازه روی تابلو نصب شده است."]),
    ("fa", ["کشاورزان امسال محصول گندم خوبی برداشت کردند.", "باران‌های بهاری به مزرعه‌ها کمک کرد."]),
    ("fa", ["داروخانه شبانه‌روزی در خیابان اصلی باز است.", "در تعطیلات هم می‌توانید مراجعه کنید."]),
    ("en", ["The library will extend its opening hours in May.", "Study rooms can be booked online."]),
    ("en", ["Your parcel has been delivered to the front desk.", "Please collect it before six o'clock."]),
    ("en", ["The bus to the airport leaves every thirty minutes.", "Tickets are sold at the kiosk."]),
    ("en", ["Annual leave requests need your manager's approval.", "Submit them two weeks ahead."]),
    ("en", ["The water supply will be cut on Tuesday morning.", "We apologise for the inconvenience."]),
    ("en", ["Thank you for attending the workshop on Saturday.", "The slides are attached to this letter."]),
]

# The three pages of the archive's multi-page TIFF: a short Persian letter scanned as one file.
TIFF_PAGES: list[list[str]] = [
    ["بسمه تعالی", "به اطلاع می‌رساند که قرارداد اجاره از اول ماه آینده تمدید می‌شود."],
    ["مبلغ اجاره ماهانه بدون تغییر باقی می‌ماند.", "ودیعه نیز همان مبلغ سال گذشته است."],
    ["لطفاً یک نسخه امضا شده را به دفتر بازگردانید.", "با سپاس، مدیریت ساختمان"],
]


def write_archive(out: Path) -> int:
    """Write the sample archive for ``dags/delix_scanned_archive_etl.py`` (see the module doc)."""
    pages = [(lang, lines) for lang, lines, _, _ in SAMPLES] + ARCHIVE_EXTRA
    truth: dict[str, str | list[str]] = {}
    total = 0
    counters: dict[str, int] = {}
    for seed, (language, lines) in enumerate(pages, start=101):
        counters[language] = counters.get(language, 0) + 1
        skew = ((seed * 37) % 25 - 12) / 10  # -1.2..+1.2 degrees, spread over the stack
        image = render_scan(lines, language, seed=seed, noise=0.015, skew_degrees=skew, grey_levels=16)
        name = f"{language}/{language}_scan_{counters[language]:03d}.png"
        total += _write(out / name, embed_ground_truth(image, "\n".join(lines)))
        truth[name] = "\n".join(lines)

    frames = [
        render_scan(lines, "fa", seed=200 + i, noise=0.015, skew_degrees=0.4, grey_levels=16)
        for i, lines in enumerate(TIFF_PAGES)
    ]
    buf = io.BytesIO()
    frames[0].save(
        buf, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate", dpi=(300, 300)
    )
    total += _write(out / "fa/fa_lease_letter_3_pages.tif", buf.getvalue())
    truth["fa/fa_lease_letter_3_pages.tif"] = ["\n".join(lines) for lines in TIFF_PAGES]

    oversize_text = "این صفحه عمداً از دو مگابایت بزرگ‌تر است.\nمتن آن همچنان خواناست."
    total += _write(out / "fa/fa_oversize_scan.png", make_oversize_png(2_050_000, text=oversize_text))
    truth["fa/fa_oversize_scan.png"] = oversize_text
    total += _write(out / "en/en_damaged_scan.png", corrupt_png())

    (out / "_ground_truth.json").write_text(
        json.dumps(truth, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    print(f"{len(pages)} scans + TIFF + oversize + damaged, {total / 1024 / 1024:.2f} MiB, in {out}")
    return 0


def _write(path: Path, data: bytes) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help=f"output directory (default {OUT})")
    parser.add_argument(
        "--archive", action="store_true", help=f"write the example DAG's archive (default {ARCHIVE_OUT})"
    )
    args = parser.parse_args(argv)
    if args.archive:
        return write_archive(args.out or ARCHIVE_OUT)
    out: Path = args.out or OUT
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
