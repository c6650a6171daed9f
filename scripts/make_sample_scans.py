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

The archive also holds PDFs, in the same language folders as the images (the DAG plans one
OCR task per language folder): two scanned PDFs (3 Persian pages, 12 English pages; grey pages
rendered like the images, embedded losslessly with img2pdf, no text layer), a born-digital
2-page English PDF with a text layer (for the ``probe`` engine), and a 160-page scanned Persian
register (bilevel CCITT G4 index cards of four short lines, about 2.4 KB a page) that the client must
split because the API takes at most 150 pages per PDF. Their page texts go to
``_ground_truth.json`` as lists, one string per page, like the TIFF's. Writing the PDFs needs
``img2pdf`` (in the ``test`` extra).

Usage: python scripts/make_sample_scans.py [--out DIR] [--archive]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from types import ModuleType

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


# --- PDFs of the sample archive ------------------------------------------------------------
# Scanned pages avoid dates and long numbers: with --psm 3 (the emulator's danlin engine)
# Tesseract mangles Persian dates like ۱۴۰۲/۰۵/۱۲ on small pages, which would measure the
# page segmentation, not the reading.

# A building manager's notice, scanned as one three-page Persian PDF.
NOTICE_FA_PAGES: list[list[str]] = [
    [
        "اطلاعیه مدیریت ساختمان",
        "به اطلاع ساکنان محترم می‌رساند که نمای ساختمان از هفته آینده تعمیر می‌شود.",
        "کار از ضلع شمالی شروع می‌شود و حدود یک ماه طول می‌کشد.",
    ],
    [
        "در این مدت لطفاً پنجره‌های رو به حیاط را بسته نگه دارید.",
        "خودروها را در پارکینگ زیرزمین بگذارید و کنار دیوار توقف نکنید.",
        "رفت و آمد کارگران فقط از در پشتی ساختمان انجام می‌شود.",
    ],
    [
        "هزینه تعمیرات از صندوق ساختمان پرداخت می‌شود.",
        "برای پرسش‌های خود با دفتر مدیریت تماس بگیرید.",
        "با سپاس از همکاری شما، مدیریت ساختمان",
    ],
]

# The minutes of a residents' meeting, scanned as one twelve-page English PDF.
MINUTES_EN_PAGES: list[list[str]] = [
    [
        "Elm Street Residents' Association",
        "Minutes of the annual general meeting,",
        "held in the community hall on a Thursday evening.",
    ],
    [
        "Present: forty-two members and the committee.",
        "The chair welcomed everyone and thanked the hosts.",
        "Apologies were received from six members.",
    ],
    [
        "The minutes of the last meeting were approved.",
        "There were no matters arising from them.",
        "The treasurer then presented the accounts.",
    ],
    [
        "Income from membership fees rose this year.",
        "The largest cost was the repair of the fence.",
        "The accounts were approved without changes.",
    ],
    [
        "The garden group reported a good season.",
        "Volunteers planted thirty new trees in the park.",
        "More help is needed with watering in summer.",
    ],
    [
        "The safety officer spoke about street lighting.",
        "Two lamps near the school are still broken.",
        "The council has promised to fix them soon.",
    ],
    [
        "Members raised concerns about parking.",
        "Delivery vans often block the narrow lane.",
        "The committee will write to the local shops.",
    ],
    [
        "A proposal to hold a summer fair was discussed.",
        "It would raise money for the new playground.",
        "The proposal was carried by a large majority.",
    ],
    [
        "The recycling scheme will change next month.",
        "Glass will be collected every other week.",
        "Leaflets will be delivered to every house.",
    ],
    [
        "Elections were held for the new committee.",
        "The chair and the treasurer were elected again.",
        "Maria Lopez was elected as the new secretary.",
    ],
    [
        "Under any other business, a member asked whether",
        "the hall could be used for a youth club.",
        "The committee agreed to look into this.",
    ],
    [
        "The chair thanked everyone for attending.",
        "The next meeting will be held in the autumn.",
        "The meeting closed at nine o'clock.",
    ],
]

# A born-digital newsletter (text layer, no images): what the probe engine is for.
NEWSLETTER_EN_PAGES: list[list[str]] = [
    [
        "Elm Street Residents' Association - Spring Newsletter",
        "Welcome to the spring newsletter. This issue covers the summer fair,",
        "the new recycling collections and the results of the committee elections.",
        "The summer fair will be held on the green on the last Saturday of June.",
        "Stalls cost 15 pounds; all money raised goes to the new playground.",
        "Volunteers for the cake stall and the raffle can sign up at the hall.",
    ],
    [
        "Recycling: from next month glass is collected every other week, on Tuesdays.",
        "Paper and cans are still collected every week. Please rinse bottles and jars.",
        "Committee: the chair and the treasurer were elected again at the annual",
        "general meeting, and Maria Lopez is our new secretary (secretary@elmstreet.example).",
        "The next meeting is in the autumn; the date will be posted on the hall notice board.",
        "Thank you to everyone who helped plant thirty new trees in the park this year.",
    ],
]

# The 160-page register: one scanned index card per incoming letter, every (subject,
# outcome) pair once, between the register's heading and the clerk's line. 160 pages is over
# the API's 150-page PDF limit on purpose. Four short lines, not two: with only two, Tesseract's
# automatic layout analysis (--psm 3, the danlin engine) took word gaps that happen to line up
# for column gutters and split or repeated words on about a fifth of the pages (6.5 % CER); with
# the heading and the clerk's line it reads all 160 pages at about 1 % CER.
REGISTER_HEADING = "دفتر ثبت نامه‌های رسیده"
REGISTER_CLERK = "مسئول دفتر"
REGISTER_SUBJECTS: list[str] = [
    "نامه اداره آب درباره قبض",
    "درخواست مرخصی کارمند",
    "صورت‌حساب خرید کاغذ",
    "گزارش بازدید از انبار",
    "قرارداد تعمیر آسانسور",
    "شکایت همسایه از صدای موتورخانه",
    "دعوت‌نامه جلسه هیئت مدیره",
    "رسید پرداخت هزینه شارژ",
    "نامه بیمه درباره خسارت",
    "فهرست اموال دفتر",
    "درخواست نصب دوربین",
    "گواهی پایان کار نقاشی",
    "پیشنهاد قیمت شرکت نظافت",
    "نامه شهرداری درباره پارکینگ",
    "برنامه نگهبانی شبانه",
    "گزارش مصرف برق ساختمان",
]
REGISTER_OUTCOMES: list[str] = [
    "بررسی شد و در پرونده قرار گرفت.",
    "برای امضا به مدیر داده شد.",
    "به واحد مالی ارسال شد.",
    "پاسخ آن هفته آینده فرستاده می‌شود.",
    "نیاز به مدارک بیشتر دارد.",
    "در جلسه بعد مطرح می‌شود.",
    "رونوشت آن به نگهبانی داده شد.",
    "پس از امضا بایگانی شد.",
    "منتظر پاسخ اداره مربوط است.",
    "نسخه اصلی نزد حسابدار است.",
]


def register_pages() -> list[list[str]]:
    """The 160 pages of the register: subject i % 16 with outcome i // 16 (page i + 1)."""
    n = len(REGISTER_SUBJECTS)
    return [
        [REGISTER_HEADING, REGISTER_SUBJECTS[i % n], REGISTER_OUTCOMES[i // n], REGISTER_CLERK]
        for i in range(n * len(REGISTER_OUTCOMES))
    ]


# Archive path -> (language, pages, first seed, bilevel); scans only (no text layer).
SCANNED_PDFS: dict[str, tuple[str, list[list[str]], int, bool]] = {
    "fa/fa_notice_3_pages.pdf": ("fa", NOTICE_FA_PAGES, 300, False),
    "en/en_minutes_12_pages.pdf": ("en", MINUTES_EN_PAGES, 400, False),
    "fa/fa_letters_register_160_pages.pdf": ("fa", register_pages(), 1000, True),
}
TEXT_PDF = "en/en_newsletter_text_2_pages.pdf"
BILEVEL_THRESHOLD = 140  # between paper (>= 227 after shading) and blurred toner (28-50)


def pdf_ground_truth() -> dict[str, list[str]]:
    """Archive path of every PDF -> its pages' texts (lines joined by newlines), in page order."""
    truth = {path: ["\n".join(lines) for lines in pages] for path, (_, pages, _, _) in SCANNED_PDFS.items()}
    truth[TEXT_PDF] = ["\n".join(lines) for lines in NEWSLETTER_EN_PAGES]
    return truth


def _import_img2pdf() -> ModuleType:
    try:
        import img2pdf
    except ImportError:
        raise SystemExit(
            'writing the archive\'s PDFs needs img2pdf: pip install img2pdf (or pip install -e ".[test]")'
        ) from None
    module: ModuleType = img2pdf
    return module


def scanned_pdf(language: str, pages: list[list[str]], *, first_seed: int, bilevel: bool) -> bytes:
    """A scanned PDF: one rendered page image per page, embedded losslessly, no text layer.

    Grey pages are the archive's PNG renders (16 grey levels, 300 dpi) embedded as they are
    (img2pdf copies the PNG's compressed data; the page size follows the image and its dpi).
    ``bilevel`` pages are thresholded to black and white and stored as CCITT Group 4, as
    high-volume archive scanners do: a few kilobytes a page. Same arguments, same bytes
    (img2pdf's own writer, no dates).
    """
    img2pdf = _import_img2pdf()
    images: list[bytes] = []
    for seed, lines in enumerate(pages, start=first_seed):
        skew = ((seed * 37) % 25 - 12) / 10  # -1.2..+1.2 degrees, as for the image scans
        image = render_scan(lines, language, seed=seed, noise=0.015, skew_degrees=skew, grey_levels=16)
        buf = io.BytesIO()
        if bilevel:
            page = image.point([255 if v > BILEVEL_THRESHOLD else 0 for v in range(256)]).convert("1")
            page.save(buf, "TIFF", compression="group4", dpi=(300, 300))
        else:
            image.save(buf, "PNG", compress_level=9, dpi=(300, 300))
        images.append(buf.getvalue())
    data: bytes = img2pdf.convert(images, engine=img2pdf.Engine.internal, nodate=True)
    return data


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def text_layer_pdf(pages: list[list[str]], *, font_size: int = 11, leading: int = 16) -> bytes:
    """A born-digital PDF: US Letter pages of Helvetica text lines (ASCII), no images.

    Written by hand like tests/pdfs.py (no PDF library needed); PDFium's text extraction
    (the probe engine) returns each page's lines joined by newlines.
    """
    count = len(pages)
    font_id = 3 + 2 * count
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
    ]
    for i, lines in enumerate(pages):
        ops = [f"BT /F1 {font_size} Tf {leading} TL 72 720 Td"]
        ops += [("T* " if j else "") + _pdf_string(line) + " Tj" for j, line in enumerate(lines)]
        stream = "\n".join([*ops, "ET"]).encode("ascii")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write_pdfs(out: Path) -> int:
    """Write the archive's PDFs (see the module doc); returns the bytes written."""
    total = 0
    for path, (language, pages, first_seed, bilevel) in SCANNED_PDFS.items():
        data = scanned_pdf(language, pages, first_seed=first_seed, bilevel=bilevel)
        total += _write(out / path, data)
        print(f"{path}: {len(pages)} pages, {len(data) / 1024:.0f} KiB")
    data = text_layer_pdf(NEWSLETTER_EN_PAGES)
    total += _write(out / TEXT_PDF, data)
    print(f"{TEXT_PDF}: {len(NEWSLETTER_EN_PAGES)} pages, {len(data) / 1024:.0f} KiB")
    return total


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
    total += write_pdfs(out)
    truth.update(pdf_ground_truth())

    (out / "_ground_truth.json").write_text(
        json.dumps(truth, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    files = f"{len(pages)} scans + TIFF + oversize + damaged + {len(pdf_ground_truth())} PDFs"
    print(f"{files}, {total / 1024 / 1024:.2f} MiB, in {out}")
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
