import io
from pathlib import Path

import numpy as np
import pytest

from medtwin.errors import DataFormatError
from medtwin.interop import read_nonmem, read_theophylline
from medtwin.models.pk import OneCompartmentOral, concentration

THEOPH = Path(__file__).parent / "data" / "theoph.csv"

VALID = """ID,TIME,AMT,RATE,II,ADDL,SS,EVID,CMT,DV,MDV,WT,CRCL
1,0,500,0,12,2,0,1,1,.,1,70,90
1,1.5,0,0,0,0,0,0,2,4.2,0,70,90
1,11.9,.,.,.,.,.,0,2,1.9,0,70,90
1,12,0,0,0,0,0,2,.,.,1,72,90
1,30,1000,500,0,0,0,1,2,0,1,72,90
1,31,0,0,0,0,0,0,2,.,1,72,90
1,40,0,0,0,0,0,3,.,.,1,72,90
2,0,250,0,24,0,1,1,1,.,1,55,60
2,6,0,0,0,0,0,0,2,3.3,0,55,60
"""


def read(text):
    return read_nonmem(io.StringIO(text))


def test_a_valid_data_set_is_read_into_doses_observations_and_covariates():
    data = read(VALID)
    assert data.ids == ("1", "2") and len(data) == 2
    s1 = data.subjects[0]
    assert s1.observation_time_h.tolist() == [1.5, 11.9]  # the MDV=1 observation row is excluded
    assert s1.dv.tolist() == [4.2, 1.9] and s1.observation_line.tolist() == [3, 4]
    assert [d.time_h for d in s1.doses] == [0.0, 30.0, 40.0]
    assert s1.doses[0].addl == 2 and s1.doses[0].ii_h == 12.0
    assert s1.doses[1].duration_h == 2.0  # AMT / RATE
    assert s1.doses[2].reset and s1.doses[2].amount_mg == 0.0  # EVID=3
    assert s1.covariates["WT"].tolist() == [70, 70, 70, 72, 72, 72, 72]  # time-varying, per record
    covariates = data.covariates()
    assert covariates["WT"].tolist() == [70.0, 55.0] and covariates["CRCL"].tolist() == [90.0, 60.0]
    table = data.doses()
    assert table.shape == (2, 5)  # subject 1: 3 oral + infusion + reset; subject 2 padded
    assert table.ss[1, 0] == 1 and table.reset[1, 0]
    t, dv, mask = data.observations()
    assert t.shape == (2, 2) and mask.tolist() == [[True, True], [True, False]]
    assert np.isnan(dv[1, 1])
    assert data.to_pandas().shape == (3, 6)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("1,-0.5,0,0,0,0,0,0,2,1.0,0", "line 3 \\(ID 1\\): TIME -0.5 is negative"),
        ("1,0.5,100,0,0,0,0,1,.,.,1", "line 3 \\(ID 1\\): dose .* without a compartment"),
        ("1,0.5,100,0,0,0,0,1,0,.,1", "line 3 \\(ID 1\\): dose .* without a compartment"),
        ("1,0.5,100,0,0,0,0,1,1,7.5,1", "line 3 \\(ID 1\\): DV=7.5 on a dose row"),
        ("1,0.5,100,0,0,0,0,1,1,.,0", "line 3 \\(ID 1\\): EVID=1 with MDV=0"),
        ("1,0.5,0,0,0,0,0,0,2,.,0", "line 3 \\(ID 1\\): an observation row .* has no DV"),
        ("1,0.5,50,0,0,0,0,0,2,2.0,0", "line 3 \\(ID 1\\): AMT=50 on an observation row"),
        ("1,0.5,100,0,0,3,0,1,1,.,1", "line 3 \\(ID 1\\): ADDL=3 / SS=0 need an interval"),
        ("1,0.5,100,-2,0,0,0,1,1,.,1", "line 3 \\(ID 1\\): RATE=-2 .* not supported"),
        ("1,0.5,100,0,0,0,4,1,1,.,1", "line 3: SS must be one of \\[0, 1, 2\\]"),
        ("1,0.5,100,0,0,0,0,7,1,.,1", "line 3: EVID must be one of"),
        ("1,abc,100,0,0,0,0,1,1,.,1", "line 3: TIME 'abc' is not a number"),
    ],
)
def test_malformed_rows_are_rejected_whole_with_line_and_reason(row, reason):
    header = "ID,TIME,AMT,RATE,II,ADDL,SS,EVID,CMT,DV,MDV\n"
    first = "1,0,100,0,0,0,0,1,1,.,1\n"
    with pytest.raises(DataFormatError, match=reason):
        read(header + first + row + "\n")


def test_unsorted_and_interleaved_subjects_are_rejected():
    header = "ID,TIME,AMT,CMT,DV\n"
    with pytest.raises(DataFormatError, match=r"line 4 \(ID 1\): TIME 1 comes before .* 2"):
        read(header + "1,0,100,1,.\n1,2,0,2,3.0\n1,1,0,2,4.0\n")
    with pytest.raises(DataFormatError, match=r"line 4: ID 1 appears again .* line 2"):
        read(header + "1,0,100,1,.\n2,0,100,1,.\n1,5,0,2,1.0\n")
    with pytest.raises(DataFormatError, match="no DV column"):
        read("ID,TIME,AMT\n1,0,100\n")
    with pytest.raises(DataFormatError, match="WT 'heavy' is not a number"):
        read("ID,TIME,DV,WT\n1,0,1.0,heavy\n")
    with pytest.raises(DataFormatError, match="without a compartment"):
        read("ID,TIME,AMT,DV\n1,0,100,.\n")  # no CMT column at all


def test_evid_is_derived_when_absent_and_columns_are_case_insensitive():
    data = read("id,time,amt,cmt,dv,mdv\n7,0,100,1,.,1\n7,2,0,2,5.0,0\n7,3,0,2,.,1\n")
    assert data.ids == ("7",) and data.subjects[0].dv.tolist() == [5.0]
    assert data.subjects[0].doses[0].amount_mg == 100.0


def test_theophylline_is_loaded_for_population_fits():
    data = read_theophylline(THEOPH)
    assert len(data) == 12
    t, dv, mask = data.observations()
    assert mask.sum() == 132 and t.shape == (12, 11)
    dose = data.doses()
    assert dose.shape == (12, 1) and (dose.cmt == 1).all() and (dose.time_h == 0).all()
    # Dose (mg/kg) x Wt (kg): subject 1 4.02 x 79.6, subject 9 3.10 x 86.4 = 267.84 mg
    assert dose.amount_mg[0, 0] == pytest.approx(319.992)
    assert dose.amount_mg[8, 0] == pytest.approx(267.84)
    assert data.covariates()["WT"][0] == 79.6
    assert dv[0, 0] == 0.74  # the pre-dose concentration is kept
    # typical one-compartment values (Pinheiro & Bates 2000: ka ~1.5/h, CL ~0.04 L/h/kg, V ~0.5 L/kg)
    conc = np.asarray(concentration(OneCompartmentOral, {"KA": 1.5, "CL": 2.8, "V": 32.0}, dose, t))
    resid = np.log(dv[:, 1:]) - np.log(conc[:, 1:])
    assert np.abs(np.median(resid)) < 0.3


def test_theophylline_layout_is_checked():
    with pytest.raises(DataFormatError, match="Theoph columns"):
        read_theophylline(io.StringIO("ID,TIME\n1,0\n"))
