"""Tests for tanhui.legends: shipped legends, density tables and their loaders.

Expected values are typed by hand from science.md (§3.5, §7.1-7.7), from the
shared-data READMEs and from the InVEST test vectors (§11.1) -- never computed
with the code under test.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tanhui.errors import LegendError, ParameterTableError
from tanhui.legends import DensityTable, Legend, density_lut, load_classes

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LEGENDS_DIR = REPO / "landcover" / "legends"
DENSITY_CSV = REPO / "landcover" / "params" / "carbon_density_horqin.csv"
MCD12C1_HORQIN = SHARED / "mcd12c1-2019-landcover" / "mcd12c1_2019_igbp_horqin.tif"
INVEST_DIR = SHARED / "invest-carbon-reference"

SHIPPED_LEGENDS = [
    "china_land_survey_3", "clcd", "cnlucc", "esa_worldcover",
    "modis_igbp_mcd12c1", "modis_igbp_mcd12q1",
]
STATUS_TAG = re.compile(r"^[VSDU](/[VSDU])*$")


def _raw_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV as strings, read without tanhui (independent of the loader)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


# --------------------------------------------------------------------------- classes


def test_classes_match_science_spec_7_1():
    classes = load_classes()
    expected_names = {
        1: "forest_broadleaf_deciduous", 2: "forest_needleleaf_evergreen",
        3: "forest_needleleaf_deciduous", 4: "forest_mixed_or_unknown", 5: "sparse_woodland",
        6: "shrubland", 7: "grassland", 8: "cropland", 9: "wetland", 10: "water",
        11: "sandy_land", 12: "barren_other", 13: "built_up", 14: "snow_ice",
    }
    assert classes["name"].to_dict() == expected_names
    assert set(classes.index[classes["vegetated"]]) == {1, 2, 3, 4, 5, 6, 7, 8, 9, 11}
    assert classes["colour"].str.fullmatch(r"#[0-9a-f]{6}").all()
    assert classes["colour"].is_unique
    assert (classes["label_zh"] != "").all() and (classes["label_en"] != "").all()


def test_load_classes_returns_a_copy():
    classes = load_classes()
    classes.loc[1, "name"] = "changed"
    assert load_classes().loc[1, "name"] == "forest_broadleaf_deciduous"


# --------------------------------------------------------------------------- shipped legends


def test_available_lists_the_shipped_legends():
    assert Legend.available() == SHIPPED_LEGENDS


@pytest.mark.parametrize("name", SHIPPED_LEGENDS)
def test_shipped_legend_is_well_formed(name):
    path = LEGENDS_DIR / f"{name}.csv"
    rows = _raw_rows(path)
    assert list(rows[0].keys()) == ["code", "source_name", "class_id", "note", "status"]
    raw_codes = [r["code"] for r in rows]
    assert len(raw_codes) == len(set(raw_codes)), "duplicate codes"
    assert len({int(c) for c in raw_codes}) == len(raw_codes), "codes equal after int()"
    assert {int(r["class_id"]) for r in rows} <= set(range(15))
    assert all(STATUS_TAG.match(r["status"]) for r in rows), "status must be V/S/D/U tags"
    assert all(r["source_name"] for r in rows)

    legend = Legend.load(name)
    assert legend.name == name
    assert legend.path == path
    assert legend.codes == {int(r["code"]): int(r["class_id"]) for r in rows}


def test_legends_directory_has_a_readme_entry_per_legend():
    readme = (LEGENDS_DIR / "README.md").read_text(encoding="utf-8")
    for name in SHIPPED_LEGENDS:
        assert f"`{name}`" in readme


# Full mappings typed from science.md §7.2-7.6 (nodata codes added where the spec names them).
CLCD = {1: 8, 2: 4, 3: 6, 4: 7, 5: 10, 6: 14, 7: 12, 8: 13, 9: 9}
ESA = {0: 0, 10: 4, 20: 6, 30: 7, 40: 8, 50: 13, 60: 12, 70: 14, 80: 10, 90: 9, 95: 9, 100: 7}
IGBP_1_16 = {1: 2, 2: 1, 3: 3, 4: 1, 5: 4, 6: 6, 7: 6, 8: 5, 9: 5, 10: 7, 11: 9, 12: 8,
             13: 13, 14: 8, 15: 14, 16: 12}
CNLUCC = {11: 8, 12: 8, 21: 4, 22: 6, 23: 5, 24: 5, 31: 7, 32: 7, 33: 7, 41: 10, 42: 10,
          43: 10, 44: 14, 45: 9, 46: 9, 47: 10, 51: 13, 52: 13, 53: 13, 61: 11, 62: 12,
          63: 12, 64: 9, 65: 12, 66: 12, 67: 12}


@pytest.mark.parametrize(
    ("name", "expected", "extra_nodata"),
    [
        ("clcd", CLCD, [0]),
        ("esa_worldcover", ESA, []),
        ("modis_igbp_mcd12q1", {**IGBP_1_16, 17: 10, 255: 0}, []),
        ("modis_igbp_mcd12c1", {**IGBP_1_16, 0: 10, 255: 0}, []),
        ("cnlucc", CNLUCC, [0]),
    ],
)
def test_legend_matches_science_spec(name, expected, extra_nodata):
    legend = Legend.load(name)
    assert legend.codes == {**expected, **{c: 0 for c in extra_nodata}}


@pytest.mark.parametrize(
    ("name", "code", "class_id"),
    [
        ("clcd", 2, 4), ("clcd", 7, 12), ("esa_worldcover", 60, 12), ("esa_worldcover", 0, 0),
        ("modis_igbp_mcd12c1", 0, 10), ("modis_igbp_mcd12q1", 17, 10),
        ("modis_igbp_mcd12q1", 255, 0), ("cnlucc", 61, 11), ("cnlucc", 33, 7),
        ("cnlucc", 47, 10), ("china_land_survey_3", 1205, 11), ("china_land_survey_3", 101, 8),
        ("china_land_survey_3", 305, 6), ("china_land_survey_3", 1110, 14),
        ("china_land_survey_3", 1109, 13), ("china_land_survey_3", 1202, 8),
    ],
)
def test_spot_checks_against_spec(name, code, class_id):
    legend = Legend.load(name)
    assert legend.codes[code] == class_id
    assert legend.lut()[code] == class_id


def test_igbp_water_code_differs_between_q1_and_c1():
    assert Legend.load("modis_igbp_mcd12c1").unmapped([0, 17]) == [17]
    assert Legend.load("modis_igbp_mcd12q1").unmapped([0, 17]) == [0]


# science.md §7.7, second-level codes -> canonical class.
SURVEY_3 = {
    "0101": 8, "0102": 8, "0103": 8, "0201": 5, "0202": 5, "0203": 5, "0204": 5,
    "0301": 4, "0302": 4, "0305": 6, "0307": 5, "0303": 9, "0304": 9, "0306": 9, "0402": 9,
    "1105": 9, "1106": 9, "1108": 9, "0401": 7, "0403": 7, "0404": 7,
    "1001": 13, "1006": 13, "1101": 10, "1102": 10, "1103": 10, "1104": 10, "1107": 10,
    "1109": 13, "1110": 14, "1201": 13, "1202": 8, "1203": 8, "1204": 12, "1205": 11,
    "1206": 12, "1207": 12,
}


def test_land_survey_codes_are_four_character_strings_matching_spec():
    rows = _raw_rows(LEGENDS_DIR / "china_land_survey_3.csv")
    assert all(re.fullmatch(r"\d{4}", r["code"]) for r in rows)
    by_code = {r["code"]: int(r["class_id"]) for r in rows}
    assert {c: by_code[c] for c in SURVEY_3} == SURVEY_3
    # first-level groups 05-10 are all built-up (§7.7)
    assert all(k == 13 for c, k in by_code.items() if "05" <= c[:2] <= "10" and c != "0000")
    legend = Legend.load("china_land_survey_3")
    assert legend.code_width == 4
    assert legend.code_str(101) == "0101"
    assert legend.to_dict()["codes"]["0101"] == 8


@pytest.mark.parametrize(
    ("value", "code", "class_id"),
    [
        ("1104A", 1104, 10), ("1107A", 1107, 10), ("0301K", 301, 4), ("0101", 101, 8),
        (101, 101, 8), (np.int16(1205), 1205, 11), ("1205", 1205, 11), (" 1205 ", 1205, 11),
        (1205.0, 1205, 11), ("101", 101, 8), ("09", 900, 13), ("05H1", 500, 13),
        ("08H2A", 800, 13), ("0810A", 810, 13), ("110401", 1104, 10),
    ],
)
def test_land_survey_value_normalisation(value, code, class_id):
    legend = Legend.load("china_land_survey_3")
    assert legend.normalise_code(value) == code
    assert legend.codes[code] == class_id


def test_normalise_codes_vectorised_and_bad_values():
    legend = Legend.load("china_land_survey_3")
    out = legend.normalise_codes(["1104A", "0101", 1205, "1104A"])
    assert out.dtype == np.int64
    assert out.tolist() == [1104, 101, 1205, 1104]
    assert legend.unmapped(["1104A", "0101", "9999"]) == [9999]
    with pytest.raises(LegendError, match="'X1'.*china_land_survey_3"):
        legend.normalise_code("X1")
    with pytest.raises(LegendError, match="None"):
        legend.normalise_codes(["0101", None])
    # plain integer legends accept spreadsheet floats but not letters
    cnlucc = Legend.load("cnlucc")
    assert cnlucc.normalise_code("61") == 61 and cnlucc.normalise_code("61.0") == 61
    with pytest.raises(LegendError):
        cnlucc.normalise_code("61a")


def test_mcd12c1_legend_covers_real_horqin_raster():
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(MCD12C1_HORQIN) as src:
        data = src.read(1)
        nodata = src.nodata
    legend = Legend.load("modis_igbp_mcd12c1")
    assert legend.unmapped(data) == []
    legend.check_codes(data, MCD12C1_HORQIN)  # does not raise
    assert nodata == 255 and legend.codes[255] == 0
    classes = legend.lut(255)[data]
    counts = {int(k): int(n) for k, n in zip(*np.unique(classes, return_counts=True), strict=True)}
    # pixel counts from shared/data/mcd12c1-2019-landcover/README.md, mapped by §7.4 by hand:
    # grassland 10233; cropland 4186 + mosaic 1; DBF 312; woody savanna 48 + savanna 82;
    # urban 84; water 43; wetland 6; barren 3; mixed forest 2.
    assert counts == {7: 10233, 8: 4187, 1: 312, 5: 130, 13: 84, 10: 43, 9: 6, 12: 3, 4: 2}


# --------------------------------------------------------------------------- LUT / errors


def test_lut_shape_dtype_and_unmapped_marker():
    legend = Legend.load("clcd")
    lut = legend.lut()
    assert lut.dtype == np.int16 and lut.shape == (10,)
    assert lut.tolist() == [0, 8, 4, 6, 7, 10, 14, 12, 13, 9]
    lut255 = legend.lut(255)
    assert lut255.shape == (256,)
    assert (lut255[10:] == -1).all()
    # max_code smaller than the largest code never truncates the legend
    assert Legend.load("esa_worldcover").lut(5).shape == (101,)
    with pytest.raises(LegendError, match="negative"):
        legend.lut(-1)


@pytest.fixture
def small_legend(tmp_path):
    return _write(tmp_path / "my_legend.csv",
                  "code,source_name,class_id,note,status\n"
                  "0,fill,0,,U\n1,forest,4,,V\n2,grass,7,,V\n3,crop,8,,V\n")


def test_unmapped_codes_error_names_codes_raster_and_legend(small_legend, tmp_path):
    legend = Legend.load(small_legend)
    assert legend.name == "my_legend"
    raster = tmp_path / "lc_2020.tif"
    codes = np.array([[1, 17, 2], [250, 17, 0]], dtype=np.uint8)
    assert legend.unmapped(codes) == [17, 250]
    with pytest.raises(LegendError) as info:
        legend.check_codes(codes, raster)
    message = str(info.value)
    assert message == (
        f"land-cover raster {raster} has class codes [17, 250] missing from legend "
        f"'my_legend' ({small_legend}). Add rows for them to the legend CSV, or mark them "
        "as nodata (class_id 0)."
    )


def test_unmapped_ignores_masked_and_nan(small_legend):
    legend = Legend.load(small_legend)
    masked = np.ma.masked_equal(np.array([1, 99, 2]), 99)
    assert legend.unmapped(masked) == []
    assert legend.unmapped(np.array([1.0, np.nan, 5.0])) == [5]
    assert legend.unmapped(iter([3, 3, 9])) == [9]
    with pytest.raises(LegendError, match="not integer class codes"):
        legend.unmapped(np.array([1.5]))


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("code,source_name,note\n1,a,\n", r"missing column\(s\) \['class_id'\]"),
        ("code,class_id\n1,4\n2,7\n1,8\n", r"column 'code': duplicate codes \[1\]"),
        ("code,class_id\n1,4\n2,15\n", r"column 'class_id'.*code 2 -> 15.*0 \(nodata\) or 1\.\.14"),
        ("code,class_id\n1,4\nx2,7\n", r"column 'code'.*row 3: 'x2'"),
        ("code,class_id\n1,-4\n", r"column 'class_id'.*row 2: '-4'"),
        ("code,class_id\n0101,8\n12,7\n", r"same width; found widths \[2, 4\]"),
        ("code,class_id\n", r"no rows"),
    ],
)
def test_malformed_legend_raises_naming_file(tmp_path, body, pattern):
    path = _write(tmp_path / "bad_legend.csv", body)
    with pytest.raises(LegendError, match=pattern) as info:
        Legend.load(path)
    assert str(path) in str(info.value)


def test_unknown_legend_name_lists_available(tmp_path):
    with pytest.raises(LegendError) as info:
        Legend.load("esa_cci_v2")
    message = str(info.value)
    assert "'esa_cci_v2'" in message
    for name in SHIPPED_LEGENDS:
        assert name in message
    with pytest.raises(LegendError, match="does not exist"):
        Legend.load(tmp_path / "missing.csv")


def test_legend_in_gb18030_and_with_bom_loads(tmp_path):
    text = "code,source_name,class_id,note,status\n61,沙地,11,,V\n12,旱地,8,,V\n"
    gbk = Legend.load(_write(tmp_path / "gbk.csv", text, encoding="gb18030"))
    bom = Legend.load(_write(tmp_path / "bom.csv", text, encoding="utf-8-sig"))
    assert gbk.codes == bom.codes == {61: 11, 12: 8}
    assert gbk.source_names[61] == "沙地"


def test_legend_to_dict_is_json_ready():
    info = Legend.load("modis_igbp_mcd12c1").to_dict()
    json.dumps(info)
    assert info["nodata_codes"] == ["255"]
    assert info["codes"]["0"] == 10
    assert len(info["sha256"]) == 64


# --------------------------------------------------------------------------- density table

# science.md §3.5, typed by hand: pool -> (mode, min, max); rows mapped to canonical ids as in
# the brief (1 poplar, 2 and 3 needleleaf plantation, 4 generic, 5 elm, ...). Ranges the spec
# does not give are min = max = mode.
NEEDLE = {"above": (25, 8, 50), "below": (6.5, 2, 13), "soil": (85, 40, 120),
          "dead": (3, 1, 8)}
SPEC_3_5 = {
    1: {"above": (31, 12, 60), "below": (8, 3, 16), "soil": (87, 45, 140), "dead": (3, 1, 6)},
    2: NEEDLE,
    3: NEEDLE,
    4: {"above": (20, 5, 60), "below": (5, 1, 16), "soil": (70, 26, 145), "dead": (2, 0.5, 6)},
    5: {"above": (10.5, 3, 25), "below": (2.7, 1, 7), "soil": (50, 26, 75), "dead": (1, 0.3, 3)},
    6: {"above": (3, 1, 8), "below": (4, 1, 10), "soil": (50, 25, 80), "dead": (0.5, 0, 2)},
    7: {"above": (0.52, 0.2, 1.5), "below": (3.3, 1, 8), "soil": (68, 35, 100),
        "dead": (0.3, 0, 1)},
    8: {"above": (0, 0, 5), "below": (0, 0, 2), "soil": (60, 35, 90), "dead": (0, 0, 0)},
    9: {"above": (2, 0.5, 6), "below": (4, 1, 10), "soil": (120, 60, 250), "dead": (1, 0, 3)},
    10: {"above": (0, 0, 0), "below": (0, 0, 0), "soil": (0, 0, 0), "dead": (0, 0, 0)},
    11: {"above": (0.05, 0, 0.3), "below": (0.2, 0, 1), "soil": (25, 10, 48), "dead": (0, 0, 0)},
    12: {"above": (0, 0, 0), "below": (0, 0, 0), "soil": (20, 5, 40), "dead": (0, 0, 0)},
    13: {"above": (0, 0, 0), "below": (0, 0, 0), "soil": (15, 0, 40), "dead": (0, 0, 0)},
    14: {"above": (0, 0, 0), "below": (0, 0, 0), "soil": (0, 0, 0), "dead": (0, 0, 0)},
}
# Sum of the four pool modes, added by hand. The §3.5 "total (mode)" column prints rounded
# totals: elm 64 (pools add to 64.2), needleleaf "~120" (119.5), grassland 72 (72.12),
# sandy land 25 (25.25); the other rows add up exactly.
POOL_SUMS = {1: 129, 2: 119.5, 3: 119.5, 4: 97, 5: 64.2, 6: 57.5, 7: 72.12, 8: 60, 9: 127,
             10: 0, 11: 25.25, 12: 20, 13: 15, 14: 0}
SPEC_TOTALS = {1: 129, 2: 120, 3: 120, 4: 97, 5: 64, 6: 57.5, 7: 72, 8: 60, 9: 127, 10: 0,
               11: 25, 12: 20, 13: 15, 14: 0}


@pytest.fixture(scope="module")
def horqin():
    return DensityTable.load("carbon_density_horqin")


def test_density_table_matches_science_spec_3_5(horqin):
    assert horqin.key == "class_id" and horqin.column_names == "tanhui"
    assert horqin.table.index.tolist() == list(range(1, 15))
    assert horqin.has_ranges
    for class_id, pools in SPEC_3_5.items():
        for pool, (mode, low, high) in pools.items():
            row = horqin.table.loc[class_id]
            assert row[f"c_{pool}_tC_ha"] == pytest.approx(mode), (class_id, pool)
            assert row[f"c_{pool}_min_tC_ha"] == pytest.approx(low), (class_id, pool)
            assert row[f"c_{pool}_max_tC_ha"] == pytest.approx(high), (class_id, pool)


def test_density_totals_equal_spec_totals(horqin):
    modes = horqin.table[[f"c_{p}_tC_ha" for p in DensityTable.POOLS]]
    totals = modes.sum(axis=1).to_dict()
    assert totals == pytest.approx(POOL_SUMS, abs=1e-9)
    for class_id, printed in SPEC_TOTALS.items():
        assert abs(totals[class_id] - printed) <= 0.5, class_id


def test_density_table_is_non_negative_and_ordered(horqin):
    table = horqin.table
    assert (table.to_numpy() >= 0).all()
    for pool in DensityTable.POOLS:
        mode = table[f"c_{pool}_tC_ha"]
        assert (table[f"c_{pool}_min_tC_ha"] <= mode).all()
        assert (mode <= table[f"c_{pool}_max_tC_ha"]).all()


def test_density_rows_are_marked_provisional_with_status_tag():
    rows = _raw_rows(DENSITY_CSV)
    assert [r["class_id"] for r in rows] == [str(i) for i in range(1, 15)]
    for row in rows:
        tag, _, rest = row["status"].partition(";")
        assert STATUS_TAG.match(tag.strip()), row["status"]
        assert "provisional" in rest
        assert row["source"] and row["notes"]


def test_density_lut(horqin):
    lut = horqin.lut(14)
    assert lut.dtype == np.float32 and lut.shape == (4, 15)
    assert np.isnan(lut[:, 0]).all()
    np.testing.assert_array_equal(lut[:, 7], np.float32([0.52, 3.3, 68, 0.3]))
    np.testing.assert_array_equal(horqin.lut(14, "max")[:, 11], np.float32([0.3, 1, 48, 0]))
    assert horqin.lut(7).shape == (4, 8)  # rows above max_code are left out
    wide = horqin.lut(20)
    assert np.isnan(wide[:, 15:]).all()


def test_missing_keys_and_check_keys(horqin, tmp_path):
    assert horqin.missing_keys(np.array([[0, 7], [11, 15]])) == [15]
    assert horqin.missing_keys([-1, 0, 1]) == []
    with pytest.raises(ParameterTableError, match=r"class_id \[15\] found in lc\.tif"):
        horqin.check_keys([7, 15], "lc.tif")


def test_density_lut_through_legend(horqin):
    lut = density_lut(Legend.load("cnlucc"), horqin)
    assert lut.shape == (4, 68)
    np.testing.assert_array_equal(lut[:, 61], np.float32([0.05, 0.2, 25, 0]))  # 沙地 -> 11
    np.testing.assert_array_equal(lut[:, 23], np.float32([10.5, 2.7, 50, 1]))  # 疏林地 -> 5
    assert np.isnan(lut[:, 0]).all()  # nodata code
    assert np.isnan(lut[:, 50]).all()  # not in the legend
    low = density_lut(Legend.load("cnlucc"), horqin, stat="min")
    np.testing.assert_array_equal(low[:, 21], np.float32([5, 1, 26, 0.5]))


def test_density_to_dict_is_json_ready(horqin):
    info = horqin.to_dict()
    json.dumps(info)
    assert info["key"] == "class_id" and info["has_ranges"] is True
    assert info["densities_tC_ha"]["1"][:4] == [31, 8, 87, 3]


# --------------------------------------------------------------------------- InVEST tables


def test_invest_willamette_table_loads():
    table = DensityTable.load(INVEST_DIR / "carbon_pools_willamette.csv")
    assert table.key == "lucode" and table.column_names == "invest"
    assert not table.has_ranges
    assert len(table.table) == 66  # data rows of the file (its README says "64 LULC classes")
    totals = table.table.sum(axis=1)
    # InVEST test vectors: lucode 1 = 15+10+60+1 = 86, lucode 2 = 5+3+20+0 = 28, lucode 3 = 8
    assert totals[1] == 86 and totals[2] == 28 and totals[3] == 8
    lut = table.lut(102)
    assert lut.shape == (4, 103)
    np.testing.assert_array_equal(lut[:, 1], np.float32([15, 10, 60, 1]))
    assert np.isnan(lut[:, 0]).all() and np.isnan(lut[:, 12]).all()  # not in the table
    with pytest.raises(ParameterTableError, match="no min/max columns"):
        table.lut(102, "min")
    assert "Mg C/ha" in table.to_dict()["units"]


def test_invest_puerto_rico_table_loads():
    table = DensityTable.load(INVEST_DIR / "puerto_rico_run" / "pools_nlcd_ILLUSTRATIVE.csv")
    assert table.key == "lucode"
    assert table.table.index.tolist() == [0, 11, 12, 21, 22, 23, 24, 31, 41, 42, 43, 52, 71, 81,
                                          82, 90, 95]
    assert table.table.loc[41].sum() == 183  # 70 + 17 + 90 + 6
    assert table.missing_keys([0, 11, 200]) == [200]  # lucode 0 is a real key here
    with pytest.raises(ParameterTableError, match="keyed by 'lucode'"):
        density_lut(Legend.load("clcd"), table)


# --------------------------------------------------------------------------- bad tables

GOOD_HEADER = "class_id,c_above_tC_ha,c_below_tC_ha,c_soil_tC_ha,c_dead_tC_ha\n"


@pytest.mark.parametrize(
    ("body", "patterns"),
    [
        ("class_id,c_above_tC_ha,c_below_tC_ha,c_soil_tC_ha\n7,1,3,68\n",
         ["missing pool column", "c_dead_tC_ha", "above", "C_<pool>"]),
        (GOOD_HEADER + "7,1,3,68,0\n8,0,-2,60,0\n",
         ["column 'c_below_tC_ha'", "negative", r"class_id 8 \(-2\)"]),
        ("class_id,c_above_tC_pixel,c_below_tC_ha,c_soil_tC_ha,c_dead_tC_ha\n7,1,3,68,0\n",
         ["column 'c_above_tC_pixel'", "per-pixel units are not accepted; give densities in "
          "t C/ha"]),
        ("class_id,c_above_kgC_m2,c_below_tC_ha,c_soil_tC_ha,c_dead_tC_ha\n7,1,3,68,0\n",
         ["column 'c_above_kgC_m2'", "unit suffix 'kgC_m2'", "10 t C/ha"]),
        (GOOD_HEADER + "7,1,3,68,0\n7,1,3,60,0\n",
         ["column 'class_id'", r"duplicate keys \[7\]"]),
        (GOOD_HEADER + "7,1,3,abc,0\n",
         ["column 'c_soil_tC_ha'", r"class_id 7 \('abc'\)"]),
        (GOOD_HEADER + "7,1,3,,0\n", ["column 'c_soil_tC_ha'", "empty"]),
        (GOOD_HEADER + "0,1,3,68,0\n", ["column 'class_id'", r"\[0\]", "nodata"]),
        (GOOD_HEADER + "15,1,3,68,0\n", ["column 'class_id'", r"\[15\]"]),
        ("code,c_above_tC_ha,c_below_tC_ha,c_soil_tC_ha,c_dead_tC_ha\n7,1,3,68,0\n",
         ["no key column", "'lucode'"]),
        ("class_id,lucode,c_above,c_below,c_soil,c_dead\n7,7,1,3,68,0\n",
         ["both 'class_id' and 'lucode'"]),
        ("lucode,C_above,c_above_tC_ha,C_below,C_soil,C_dead\n1,1,1,3,68,0\n",
         ["'C_above' and 'c_above_tC_ha' both give pool 'above'"]),
        (GOOD_HEADER.replace("\n", ",c_soil_min_tC_ha\n") + "7,1,3,68,0,35\n",
         ["column 'c_soil_min_tC_ha'", "needs both"]),
        (GOOD_HEADER.replace("\n", ",c_soil_min_tC_ha,c_soil_max_tC_ha\n") + "7,1,3,68,0,70,100\n",
         ["c_soil_min_tC_ha", r"class_id 7 \(70 / 68 / 100\)"]),
    ],
)
def test_bad_density_table_raises_naming_file_and_column(tmp_path, body, patterns):
    path = _write(tmp_path / "bad_density.csv", body)
    with pytest.raises(ParameterTableError) as info:
        DensityTable.load(path)
    message = str(info.value)
    assert str(path) in message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)


def test_our_columns_with_lucode_key_and_extra_columns(tmp_path):
    path = _write(tmp_path / "per_code.csv",
                  "LUCODE,name,C_ABOVE_TC_HA,c_below_tC_ha,c_soil_tC_ha,c_dead_tC_ha,"
                  "c_total_x,src\n"
                  "31,high cover,1.0,6,80,0.5,0,x\n33,low cover,0.2,1,40,0,0,y\n")
    table = DensityTable.load(path)
    assert table.key == "lucode" and table.column_names == "tanhui"
    assert list(table.table.columns) == [f"c_{p}_tC_ha" for p in DensityTable.POOLS]
    assert table.table.loc[31].tolist() == [1.0, 6, 80, 0.5]


def test_unknown_density_table_name_lists_available():
    with pytest.raises(ParameterTableError, match=r"'nope'.*\['carbon_density_horqin'"):
        DensityTable.load("nope")
    assert "carbon_density_horqin" in DensityTable.available()
