"""The one metrics -> Markdown formatter that report.md, tables.md and `ptacl compare` share."""

import math

from ptacl.markdown import cell, digits_for, fmt, mean_ci, mean_of_all, mean_sd, mean_sd_ci, table


def test_numbers_intervals_and_missing_values():
    assert fmt(0.51234) == "0.512" and fmt(None) == "–" and fmt(math.nan) == "–"
    assert digits_for("MdR") == 2 and digits_for("P@1") == 3
    assert cell(0.5, [0.4, 0.6]) == "0.500 [0.400, 0.600]"
    assert cell(0.5, [0.4, None]) == cell(0.5, [math.nan, 0.6]) == cell(0.5) == "0.500"
    assert cell(None, [0.4, 0.6]) == "–"  # no interval beside a missing value


def test_means_over_seeds_with_their_bootstrap_intervals():
    assert mean_sd([0.4, 0.6, None]) == "0.500 ± 0.141"
    assert mean_sd([0.4]) == "0.400" and mean_sd([]) == "–"
    assert mean_ci([[0.3, 0.5], None, [0.5, 0.9]]) == [0.4, 0.7]
    assert mean_sd_ci([0.4, 0.6], [[0.3, 0.5], [0.5, 0.9]]) == "0.500 ± 0.141 [0.400, 0.700]"
    assert mean_sd_ci([0.4, 0.6], [None, [None, None]]) == "0.500 ± 0.141"
    assert mean_of_all([0.2, 0.4]) == "0.300" and mean_of_all([0.2, None]) == "–"


def test_table_layout():
    text = table(["a", "b"], [["1", ""], ["", "2"]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | |", "| | 2 |"]
