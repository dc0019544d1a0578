"""Synthetic Norwegian national identity numbers (fødselsnummer) for the demo journal.

Synthetic numbers add 80 to the month, as the national test registry does, so they can never belong
to a real person. The two check digits follow the mod-11 rule; an individual number whose check digit
would be 10 has no valid number, and the generator moves on to the next individual number.
"""

from __future__ import annotations

from datetime import date

_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _check_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    remainder = 11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    if remainder == 11:
        return 0
    if remainder == 10:
        return None
    return remainder


def with_check_digits(first_nine: str) -> str | None:
    """Append both check digits, or None when no valid number starts with these nine digits."""
    k1 = _check_digit(first_nine, _WEIGHTS_1)
    if k1 is None:
        return None
    k2 = _check_digit(first_nine + str(k1), _WEIGHTS_2)
    if k2 is None:
        return None
    return f"{first_nine}{k1}{k2}"


def _individual_range(year: int) -> range:
    if 1900 <= year <= 1999:
        return range(0, 500)
    if 2000 <= year <= 2039:
        return range(500, 1000)
    raise ValueError(f"birth year {year} is outside what the generator supports (1900-2039)")


def synthetic_national_id(birth: date, individual: int) -> str:
    """The first valid synthetic number for this birth date at or after `individual`.

    Deterministic, so seeded populations and demo personas get the same numbers every time.
    """
    span = _individual_range(birth.year)
    start = span.start + individual % len(span)
    for offset in range(len(span)):
        number = span.start + (start - span.start + offset) % len(span)
        nine = f"{birth.day:02d}{birth.month + 80:02d}{birth.year % 100:02d}{number:03d}"
        candidate = with_check_digits(nine)
        if candidate is not None:
            return candidate
    raise ValueError(f"no valid synthetic national id for {birth}")  # pragma: no cover


def is_valid_synthetic(national_id: str) -> bool:
    """True for an 11-digit number with valid check digits and a synthetic (+80) month."""
    if len(national_id) != 11 or not national_id.isdigit():
        return False
    if with_check_digits(national_id[:9]) != national_id:
        return False
    return 81 <= int(national_id[2:4]) <= 92
