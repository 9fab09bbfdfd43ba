"""Writes the examples' landing files (committed; run again only to change them).

iris and wine are scikit-learn's bundled tables, written as the exports users bring: a header,
integers written as decimals (wine's magnesium and proline read ``127.0``), a few values given
as ``NA``. The baskets are generated (seeded): a shop's orders with the items of each order in
one ``|``-joined column, and a few orders exported twice.

Usage: ``.venv/bin/python examples/make_data.py``
"""

from __future__ import annotations

import random
from pathlib import Path

from sklearn.datasets import load_iris, load_wine

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


if __name__ == "__main__":
    iris()
    wine()
    baskets()
