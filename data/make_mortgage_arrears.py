"""Generate data/mortgage_arrears.csv: a small, imbalanced synthetic classification data set.

Each row is a mortgage; the target `arrears_12m` says whether it fell 90+ days behind
within a year. Positives are rare (about 3 %), and most loans are so safe that their true
probability is below 1e-3, which is what makes parity checks on probabilities hard: a
tiny absolute difference is a large relative one. Features sit on very different scales
(savings in the thousands, incomes in the tens of thousands, balances in the hundreds of
thousands, ratios near 1), with missing values and a rare category, so the imbalanced
path of training, export, serving and explanation can be tested end to end.
Deterministic: `python data/make_mortgage_arrears.py` rewrites the same file.
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

ROWS = 3000
PROPERTY_TYPES = {"detached": -0.3, "semi": 0.0, "terraced": 0.2, "flat": 0.4}
RATES = ["fixed", "variable"]
#: Log-odds of arrears = INTERCEPT + SPREAD * risk score: few positives, most loans safe.
INTERCEPT = -7.0
SPREAD = 1.7


OUTPUT = Path(__file__).with_name("mortgage_arrears.csv")


def main(path: Path = OUTPUT) -> None:
    rng = random.Random(20261201)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "loan_id",
                "balance",
                "annual_income",
                "savings",
                "loan_to_value",
                "credit_score",
                "months_on_book",
                "missed_payments_12m",
                "property_type",
                "rate_type",
                "arrears_12m",
            ]
        )
        for i in range(ROWS):
            income = math.exp(rng.gauss(math.log(55_000), 0.45))
            balance = income * rng.uniform(2.0, 5.0)
            savings = math.exp(rng.gauss(math.log(6_000), 1.0))
            ltv = min(1.15, max(0.2, rng.gauss(0.7, 0.15)))
            score = min(850, max(350, rng.gauss(720, 60)))
            months = rng.randint(1, 300)
            missed = min(6, int(rng.expovariate(3.0)))
            kind = rng.choices(list(PROPERTY_TYPES), weights=[3, 3, 3, 2])[0]
            if rng.random() < 0.01:
                kind = "houseboat"  # rare category
            rate = rng.choices(RATES, weights=[3, 1])[0]
            risk = (
                7.0 * (ltv - 0.7)
                - 0.025 * (score - 720)
                - 0.9 * math.log(savings / 6_000)
                + 1.5 * math.log(balance / income / 3.5)
                + 1.1 * missed
                - 0.004 * months
                + PROPERTY_TYPES.get(kind, 0.5)
                + (0.6 if rate == "variable" else 0.0)
            )
            logit = INTERCEPT + SPREAD * risk
            arrears = rng.random() < 1 / (1 + math.exp(-logit))
            row = [
                f"M{i:05d}",
                round(balance, -2),
                round(income, -2),
                round(savings) if rng.random() > 0.05 else "",
                round(ltv, 3),
                round(score),
                months,
                missed,
                kind,
                rate if rng.random() > 0.03 else "",
                "yes" if arrears else "no",
            ]
            writer.writerow(row)


if __name__ == "__main__":
    main()
