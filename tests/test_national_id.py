"""Synthetic national identity numbers: valid check digits, month + 80, never a real person's."""

from __future__ import annotations

from datetime import date, timedelta

from gateway.national_id import is_valid_synthetic, synthetic_national_id, with_check_digits


def test_check_digits_follow_the_mod_11_rule() -> None:
    # Weights 3,7,6,1,8,9,4,5,2 then 5,4,3,2,7,6,5,4,3,2, worked by hand for 010180 + 001:
    # k1 = 11 - (0*3+1*7+0*6+1*1+8*8+0*9+0*4+0*5+1*2) % 11 = 11 - 74 % 11 = 3
    # k2 = 11 - (0*5+1*4+0*3+1*2+8*7+0*6+0*5+0*4+1*3+3*2) % 11 = 11 - 71 % 11 = 6
    assert with_check_digits("010180001") == "01018000136"


def test_a_nine_digit_start_whose_check_digit_would_be_10_has_no_number() -> None:
    found = [n for n in range(100) if with_check_digits(f"150380{n:03d}") is None]
    assert found, "some individual numbers must be invalid"


def test_generated_numbers_are_synthetic_valid_and_encode_the_birth_date() -> None:
    day = date(1941, 1, 1)
    for step in range(0, 365 * 80, 97):
        birth = day + timedelta(days=step)
        number = synthetic_national_id(birth, step)
        assert is_valid_synthetic(number), number
        assert number[:2] == f"{birth.day:02d}"
        assert int(number[2:4]) == birth.month + 80
        assert number[4:6] == f"{birth.year % 100:02d}"
        assert (0 <= int(number[6:9]) < 500) if birth.year < 2000 else (500 <= int(number[6:9]) < 1000)


def test_a_real_style_number_is_not_accepted_as_synthetic() -> None:
    real_month = with_check_digits("010150001") or with_check_digits("010150002")
    assert real_month is not None and not is_valid_synthetic(real_month)
    assert not is_valid_synthetic("01018000137")
    assert not is_valid_synthetic("0101800013")
