from __future__ import annotations

import pytest
import sqlalchemy as sa

from medtwin.errors import ConflictError, DataFormatError, NotFoundError
from medtwin.records import DeviceRecord, PatientRecord
from medtwin.security import ROLE_SCOPES, Role, parse_scopes


def test_users_and_authentication(store):
    uid = store.create_user("dr.house", "vicodin", Role.clinician)
    principal = store.authenticate("dr.house", "vicodin")
    assert principal is not None
    assert (principal.subject, principal.username, principal.role) == (
        uid,
        "dr.house",
        Role.clinician,
    )
    assert principal.scopes == ROLE_SCOPES[Role.clinician]
    assert store.authenticate("dr.house", "Vicodin") is None
    assert store.authenticate("nobody", "vicodin") is None
    user = store.get_user(uid)
    assert user.username == "dr.house" and not user.disabled and user.created_at.tzinfo is not None
    assert not hasattr(user, "password_hash")
    store.disable_user(uid)
    assert store.authenticate("dr.house", "vicodin") is None
    store.disable_user(uid, disabled=False)
    assert store.authenticate("dr.house", "vicodin") is not None
    with pytest.raises(ConflictError, match=r"username 'dr\.house' is taken"):
        store.create_user("dr.house", "other", "admin")
    with pytest.raises(NotFoundError):
        store.get_user("ghost")


def test_scopes_roles_and_device_accounts(store):
    store.add_patient(PatientRecord("p1"))
    store.add_device(DeviceRecord("cgm-1", "p1", "cgm"))
    rid = store.create_user("res", "pw", "researcher", scopes="user/Observation.rs")
    did = store.create_user("cgm", "pw", "device", patient_id="p1", device_id="cgm-1")
    assert store.get_user(rid).scopes == parse_scopes("user/Observation.rs")
    device = store.get_user(did)
    assert (device.role, device.patient_id, device.device_id) == (Role.device, "p1", "cgm-1")
    assert [u.username for u in store.list_users()] == ["cgm", "res"]
    with pytest.raises(DataFormatError, match="role: 'nurse' is not a role"):
        store.create_user("n", "pw", "nurse")
    with pytest.raises(NotFoundError, match="patient 'p9'"):
        store.create_user("cgm2", "pw", "device", patient_id="p9")


def test_weak_hashes_are_upgraded_on_login(store, monkeypatch):
    from medtwin.security import hash_password, password_needs_rehash
    from medtwin.store import _store
    from medtwin.store._schema import User

    store.create_user("old", "pw", "admin")
    with store._session() as s:
        weak = s.scalar(sa.select(User.password_hash))
    assert password_needs_rehash(weak)  # the fixture's cheap hasher
    monkeypatch.setattr(_store, "hash_password", hash_password)  # the real cost
    assert store.authenticate("old", "pw") is not None
    with store._session() as s:
        strong = s.scalar(sa.select(User.password_hash))
    assert strong != weak and not password_needs_rehash(strong)
    assert store.authenticate("old", "pw") is not None
