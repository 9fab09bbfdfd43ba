"""Writes the examples' landing files (committed; run again only to change them).

iris and wine are scikit-learn's bundled tables, written as the exports users bring: a header,
integers written as decimals (wine's magnesium and proline read ``127.0``), a few values given
as ``NA``. The baskets are generated (seeded): a shop's orders with the items of each order in
one ``|``-joined column, and a few orders exported twice. digits_csv is scikit-learn's 8x8
digits as a pixel-column CSV (label, pixel0..pixel63, no id; one pixel damaged). shapes is a
folder of generated PNG files in class folders (circle/, square/, triangle/), grey 16x16 and RGB
24x20 mixed, with one file that is not an image. sensors is generated machine readings
(temperature and vibration each minute) in three regimes, a few readings dropped. tickets is
generated support tickets in three queues, no id column, the same ticket sent more than once.

Usage: ``.venv/bin/python examples/make_data.py``
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from sklearn.datasets import load_digits, load_iris, load_wine

HERE = Path(__file__).resolve().parent


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def iris() -> None:
    frame = load_iris(as_frame=True).frame
    frame["species"] = frame.pop("target").map(dict(enumerate(load_iris().target_names)))
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    write(HERE / "iris" / "landing" / "flowers" / "iris.csv", frame.to_csv(index=False))


def wine() -> None:
    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    lines = frame.to_csv(index=False).splitlines()  # pandas writes magnesium 127 as 127.0
    header, rows = lines[0], lines[1:]
    for i in range(7, len(rows), 25):  # a few missing malic_acid values, as "NA"
        cells = rows[i].split(",")
        cells[1] = "NA"
        rows[i] = ",".join(cells)
    write(HERE / "wine" / "landing" / "wines" / "wine.csv", "\n".join([header, *rows]) + "\n")


def baskets() -> None:
    rng = random.Random(11)
    aisles = {
        "breakfast": ["coffee", "milk", "bread", "butter", "jam", "cereal"],
        "dinner": ["pasta", "tomatoes", "parmesan", "basil", "olive oil", "wine"],
        "snacks": ["crisps", "salsa", "beer", "nuts", "chocolate"],
    }
    rows = ["order_id,customer,items"]
    for order in range(1, 601):
        aisle = rng.choice(list(aisles))
        picked = rng.sample(aisles[aisle], rng.randint(2, 4))
        picked += rng.sample([i for a in aisles.values() for i in a], rng.randint(0, 2))
        row = f"{order},c{rng.randint(1, 120):03d},{' | '.join(dict.fromkeys(picked))}"
        rows.append(row)
        if order % 97 == 0:  # exported twice
            rows.append(row)
    write(HERE / "baskets" / "landing" / "orders" / "orders.csv", "\n".join(rows) + "\n")


def digits_csv() -> None:
    digits = load_digits()
    header = ",".join(["label", *[f"pixel{i}" for i in range(64)]])
    rows = [
        ",".join(map(str, [label, *pixels.astype(int)]))
        for label, pixels in zip(digits.target, digits.data, strict=True)
    ]
    cells = rows[100].split(",")
    cells[20] = "NA"  # a damaged pixel: that row goes to quarantine
    rows[100] = ",".join(cells)
    write(HERE / "digits_csv" / "landing" / "digits" / "digits.csv", "\n".join([header, *rows]) + "\n")


def shapes(per_class: int = 60) -> None:
    rng = np.random.default_rng(5)
    folder = HERE / "shapes" / "landing" / "shapes"
    seen: set[bytes] = set()
    for kind in ("circle", "square", "triangle"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rgb = i % 3 == 0
            width, height = (24, 20) if rgb else (16, 16)
            ink = tuple(int(v) for v in rng.integers(150, 256, 3)) if rgb else int(rng.integers(150, 256))
            image = Image.new("RGB" if rgb else "L", (width, height))
            draw = ImageDraw.Draw(image)
            size = rng.uniform(0.5, 0.8) * min(width, height)
            x, y = (
                rng.uniform(size / 2 + 1, width - size / 2 - 1),
                rng.uniform(size / 2 + 1, height - size / 2 - 1),
            )
            box = [x - size / 2, y - size / 2, x + size / 2, y + size / 2]
            if kind == "circle":
                draw.ellipse(box, fill=ink)
            elif kind == "square":
                draw.rectangle(box, fill=ink)
            else:
                draw.polygon([(x, box[1]), (box[0], box[3]), (box[2], box[3])], fill=ink)
            data = io.BytesIO()
            image.save(data, format="PNG")
            if data.getvalue() in seen:  # the same picture twice would land as a replay
                continue
            seen.add(data.getvalue())
            (folder / kind / f"{kind}_{i:03}.png").write_bytes(data.getvalue())
    (folder / "square" / "square_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short by a failed upload")


def sensors(machines: int = 60, steps: int = 120) -> None:
    """Machines logging temperature and vibration each minute; each machine runs in one regime
    (steady, overheating: temperature climbs, worn: vibration spikes). A few readings are
    missing, as loggers drop them."""
    rng = np.random.default_rng(8)
    rows = ["machine,minute,temperature,vibration,regime"]
    regimes = ("steady", "overheating", "worn")
    for machine in range(machines):
        regime = regimes[machine % 3]
        start, base = rng.normal(60, 3), rng.normal(1.0, 0.1)
        climb = rng.uniform(0.3, 0.6) if regime == "overheating" else 0.0
        for minute in range(steps):
            temperature = start + climb * minute + rng.normal(0, 0.5)
            spike = (rng.random() < 0.25) * rng.uniform(1, 2) * (regime == "worn")
            vibration = base + rng.normal(0, 0.05) + spike
            cells = [f"m{machine:02}", str(minute), f"{temperature:.2f}", f"{vibration:.3f}", regime]
            if rng.random() < 0.003:
                cells[3] = ""  # a dropped reading
            rows.append(",".join(cells))
    write(HERE / "sensors" / "landing" / "readings" / "readings.csv", "\n".join(rows) + "\n")


def tickets(count: int = 900) -> None:
    """Support tickets in three queues (billing, delivery, account), written from phrase pools
    with openers and closers every queue shares; no id column, some bodies quoted over lines."""
    rng = random.Random(13)
    phrases = {
        "billing": [
            "I was charged twice",
            "the invoice total is wrong",
            "please refund my payment",
            "my card was billed after I cancelled",
            "the receipt shows the wrong VAT",
        ],
        "delivery": [
            "my parcel has not arrived",
            "the courier left it at the wrong address",
            "tracking has not moved for a week",
            "the box arrived damaged",
            "delivery was late again",
        ],
        "account": [
            "I cannot log in",
            "the password reset link has expired",
            "please delete my account",
            "I want to change my email address",
            "two factor codes never reach my phone",
        ],
    }
    openers = ["Hello,", "Hi team,", "Good morning,", "Dear support,", ""]
    closers = ["Thanks.", "Regards, a customer", "Please help.", "Any update?", ""]
    rows = ["subject,body,queue"]
    for _ in range(count):
        queue = rng.choice(list(phrases))
        said = rng.sample(phrases[queue], 2)
        body = " ".join(
            part
            for part in [rng.choice(openers), f"{said[0]}.", f"Also {said[1]}.", rng.choice(closers)]
            if part
        )
        if rng.random() < 0.1:
            body = body.replace(". ", ".\n", 1)  # a line break inside the quoted value
        subject = said[0].split()[-1]
        rows.append(f'{subject},"{body}",{queue}')
    write(HERE / "tickets" / "landing" / "tickets" / "tickets.csv", "\n".join(rows) + "\n")


if __name__ == "__main__":
    iris()
    wine()
    baskets()
    digits_csv()
    shapes()
    sensors()
    tickets()
