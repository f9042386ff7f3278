"""PopulationData: padding, dose records, covariates, and rejected input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medtwin.calibrate.population import PopulationData
from medtwin.errors import DataFormatError
from medtwin.models.pk import Dose, DoseTable, OneCompartmentOral, Regimen


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ID": [1, 1, 1, 1, 2, 2, 2],
            "TIME": [0.0, 1.0, 12.0, 13.0, 0.0, 2.0, 0.5],
            "DV": [np.nan, 4.0, np.nan, 6.0, np.nan, 3.0, 5.0],
            "WT": [70.0] * 4 + [55.0] * 3,
        }
    )


DOSES = DoseTable.from_doses([[Dose(0.0, 100.0, 1), Dose(12.0, 100.0, 1)], [Dose(0.0, 50.0, 1)]])


def test_observations_doses_and_padding():
    d = PopulationData.from_frame(frame(), doses=DOSES)
    assert d.n_subjects == 2 and d.n_observations == 4
    # rows without DV are not observations; subject 2's are sorted by time
    assert d.time.tolist() == [[1.0, 13.0], [0.5, 2.0]]
    assert d.dv.tolist() == [[4.0, 6.0], [5.0, 3.0]]
    assert list(d.covariates) == ["WT"]
    s = d.subjects()
    assert set(s) == {"time", "WT", "doses"}
    assert s["WT"].shape == (2,)
    one = d.subject(1)
    assert one["time"].tolist() == [0.5, 2.0]
    assert one["doses"].amount_mg.tolist() == [50.0, 0.0]
    assert d.select([1]).doses.amount_mg.tolist() == [[50.0, 0.0]]


def test_a_shared_regimen_is_given_to_every_subject():
    shared = Regimen.oral(100, every_h=12, doses=2).to_doses(OneCompartmentOral)
    d = PopulationData.from_frame(frame(), doses=shared)
    assert d.doses.amount_mg.tolist() == [[100.0, 100.0], [100.0, 100.0]]


def test_dose_table_must_match_the_subjects():
    three = DoseTable.from_doses([[Dose(0.0, 1.0, 1)]] * 3)
    with pytest.raises(DataFormatError, match="3 subjects, not 2"):
        PopulationData.from_frame(frame(), doses=three)
    with pytest.raises(DataFormatError, match="DoseTable"):
        PopulationData.from_frame(frame(), doses=[Dose(0.0, 1.0, 1)])


def test_padding_is_masked():
    frame = pd.DataFrame({"ID": [1, 1, 1, 2], "TIME": [1.0, 2.0, 3.0, 1.0], "DV": [1.0, 2, 3, 4]})
    d = PopulationData.from_frame(frame)
    assert d.mask.tolist() == [[True, True, True], [True, False, False]]
    assert d.time[1].tolist() == [1.0, 1.0, 1.0]
    back = d.to_frame(X=d.dv * 2)
    assert back["X"].tolist() == [2.0, 4.0, 6.0, 8.0]
    assert d.select([1]).ids.tolist() == [2]


@pytest.mark.parametrize(
    ("change", "kwargs", "match"),
    [
        (lambda f: f.drop(columns="DV"), {}, r"lack the column\(s\) \['DV'\]"),
        (
            lambda f: f.assign(WT=[70.0, 71.0, 70.0, 70.0, 55, 55, 55]),
            {},
            "covariate 'WT' of subject 1",
        ),
        (lambda f: f.assign(TIME=[0.0, np.inf, 12, 13, 0, 2, 0.5]), {}, "row 1: time"),
        (lambda f: f, {"covariates": ["HT"]}, r"\['HT'\] are not in the data"),
        (
            lambda f: f.assign(DV=[np.nan] * 4 + [np.nan, 3.0, 5.0]),
            {},
            r"subject\(s\) \[1\] have no observations",
        ),
    ],
)
def test_bad_data_are_rejected(change, kwargs, match):
    with pytest.raises(DataFormatError, match=match):
        PopulationData.from_frame(change(frame()), **kwargs)


def test_not_a_frame():
    with pytest.raises(DataFormatError, match="DataFrame"):
        PopulationData.from_frame({"ID": [1]})


def test_from_a_nonmem_data_set():
    import io

    from medtwin.interop.nonmem import read_nonmem

    text = (
        "ID,TIME,AMT,CMT,EVID,DV,MDV,WT\n"
        "1,0,100,1,1,.,1,70\n1,1,0,2,0,1.5,0,70\n1,4,0,2,0,0.9,0,70\n"
        "2,0,200,1,1,.,1,90\n2,2,0,2,0,2.5,0,90\n"
    )
    d = PopulationData.from_nonmem(read_nonmem(io.StringIO(text)))
    assert d.ids.tolist() == ["1", "2"]
    assert d.dv.tolist() == [[1.5, 0.9], [2.5, 2.5]]
    assert d.mask.tolist() == [[True, True], [True, False]]
    assert d.covariates["WT"].tolist() == [70.0, 90.0]
    assert d.doses.amount_mg.tolist() == [[100.0], [200.0]]
    with pytest.raises(DataFormatError, match="NonmemData"):
        PopulationData.from_nonmem(frame())
