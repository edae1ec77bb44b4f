"""Generate data/quick_sale.csv: a small synthetic classification data set.

Each row is a listing; the target `sold_within_30d` says whether it sold within 30 days.
The signal is known (logistic in price-to-value ratio, condition, days of the year and
neighbourhood demand), with missing values and a rare category, so the classification
path of the training job and the predict function can be tested end to end.
Deterministic: `python data/make_quick_sale.py` rewrites the same file.
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

ROWS = 1500
NEIGHBOURHOODS = {
    "Old Town": -0.4,
    "College Creek": 0.5,
    "Edwards": -0.2,
    "Somerset": 0.8,
    "Gilbert": 0.2,
}
CONDITIONS = ["poor", "fair", "good", "excellent"]


def main() -> None:
    rng = random.Random(20261124)
    path = Path(__file__).with_name("quick_sale.csv")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "listing_id",
                "list_price",
                "estimated_value",
                "living_area",
                "bedrooms",
                "condition",
                "neighbourhood",
                "month_listed",
                "photos",
                "sold_within_30d",
            ]
        )
        for i in range(ROWS):
            area = max(500, rng.gauss(1600, 450))
            value = area * rng.uniform(90, 160)
            ratio = rng.gauss(1.0, 0.08)
            price = value * ratio
            condition = rng.choices(CONDITIONS, weights=[1, 3, 5, 2])[0]
            hood = rng.choices(list(NEIGHBOURHOODS), weights=[3, 3, 2, 2, 2])[0]
            if rng.random() < 0.01:
                hood = "Bluestem"  # rare category
            month = rng.randint(1, 12)
            photos = rng.randint(0, 40)
            logit = (
                -8.0 * (ratio - 1.0)
                + 0.6 * CONDITIONS.index(condition)
                - 0.9
                + NEIGHBOURHOODS.get(hood, 0.0)
                + 0.5 * math.sin((month - 3) / 12 * 2 * math.pi)
                + 0.03 * photos
            )
            sold = rng.random() < 1 / (1 + math.exp(-logit))
            bedrooms = max(1, round(area / 550 + rng.gauss(0, 0.7)))
            row = [
                f"L{i:05d}",
                round(price, -2),
                round(value, -2),
                round(area),
                bedrooms if rng.random() > 0.05 else "",
                condition,
                hood,
                month,
                photos if rng.random() > 0.05 else "",
                "yes" if sold else "no",
            ]
            writer.writerow(row)


if __name__ == "__main__":
    main()
