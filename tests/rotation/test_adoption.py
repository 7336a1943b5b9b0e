"""Adopting the key the stores serve: its Admin API id is proven, never guessed from a hint or
taken on the word of store metadata that whoever writes the store can forge."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from keyguard.stores.interface import Stage, VersionMeta
from tests.rotation.conftest import FakeWorld, MintedKey, Project, look_alike


def test_store_metadata_naming_another_key_never_revokes_that_key(
    fake_world: FakeWorld, new_key: MintedKey
) -> None:
    victim_id, _ = fake_world.admin.mint("billing-prod", "wrkspc_p")
    old_id, old = fake_world.admin.mint("prod-old", "wrkspc_p")
    for store in fake_world.stores:
        store.seed(old, VersionMeta(key_id=victim_id))  # forged: the victim's id
    out = fake_world.engine(grace=timedelta(0)).rotate(new_key.value)
    assert out.exit_code == 0, out.message
    assert fake_world.admin.keys[victim_id].status == "active"
    assert "never identified" in out.message and old.hint in out.message
    assert fake_world.admin.keys[old_id].status == "active"  # not proven: left to a person


def test_a_look_alike_with_forged_metadata_never_revokes_the_key_it_imitates(
    fake_world: FakeWorld, new_key: MintedKey
) -> None:
    """Both forgeries at once: a string with the victim's hint AND metadata naming its id. The
    id's hint matches, so only authenticating the stored value tells the two apart."""
    victim_id, victim = fake_world.admin.mint("billing-prod", "wrkspc_p")
    for store in fake_world.stores:
        store.seed(look_alike(victim), VersionMeta(key_id=victim_id))
    out = fake_world.engine(grace=timedelta(0)).rotate(new_key.value)
    assert fake_world.admin.keys[victim_id].status == "active", out.message
    assert "never identified" in out.message


def test_metadata_naming_a_twin_with_the_same_hint_never_revokes_the_twin(
    fake_world: FakeWorld, new_key: MintedKey
) -> None:
    """Two real keys show the served key's hint, and the stores' metadata names the other one:
    a hint match plus a recorded id cannot tell them apart, so neither is taken as the served
    key (the twin would be revoked as the "old" key)."""
    served_id, served = fake_world.admin.mint("prod-old", "wrkspc_p")
    twin_id, _ = fake_world.admin.mint("billing-prod", "wrkspc_p")
    twin = fake_world.admin.keys[twin_id]
    fake_world.admin.keys[twin_id] = replace(twin, partial_key_hint=served.hint)
    for store in fake_world.stores:
        store.seed(served, VersionMeta(key_id=twin_id))
    out = fake_world.engine(grace=timedelta(0)).rotate(new_key.value)
    assert fake_world.admin.keys[twin_id].status == "active", out.message
    assert fake_world.admin.keys[served_id].status == "active"  # not proven: left to a person
    assert "never identified" in out.message


def test_store_metadata_naming_the_served_key_is_still_trusted(
    fake_world: FakeWorld, new_key: MintedKey
) -> None:
    old_id, old = fake_world.admin.mint("prod-old", "wrkspc_p")
    for store in fake_world.stores:
        store.seed(old, VersionMeta(key_id=old_id))
    assert fake_world.engine(grace=timedelta(0)).rotate(new_key.value).exit_code == 0
    assert fake_world.admin.keys[old_id].status == "inactive"


def test_a_rebuilt_journal_never_revokes_the_key_forged_metadata_names(
    fake_world: FakeWorld, serving_old_key: MintedKey, new_key: MintedKey
) -> None:
    victim_id, _ = fake_world.admin.mint("billing-prod", "wrkspc_p")
    assert fake_world.engine().rotate(new_key.value).waiting_for == "grace"
    (fake_world.state_dir / "prod.journal.jsonl").unlink()
    for store in fake_world.stores:
        for version in store.versions:
            if Stage.PREVIOUS in version.stages:
                version.meta = replace(version.meta, key_id=victim_id)
    fake_world.engine(grace=timedelta(0), recover=True).rotate()
    assert fake_world.admin.keys[victim_id].status == "active"
    assert all(store.get() == new_key.value for store in fake_world.stores)


def test_a_look_alike_in_the_stores_never_revokes_the_key_whose_hint_it_copies(
    project: Project,
) -> None:
    _, victim = project.mint("billing-prod")
    project.seed(look_alike(victim))  # a typo'd or planted value that shows the victim's hint
    _, new = project.mint("prod-20261125")
    done = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    assert done.returncode == 0, done.stdout + done.stderr
    assert project.served() == [new, new]
    assert project.status_of(victim) == "active"
    assert "never identified" in done.stdout


def test_two_keys_with_the_served_key_hint_are_never_told_apart_by_a_guess(
    project: Project,
) -> None:
    _, served = project.mint("prod-legacy")
    project.seed(served)
    _, twin = project.mint("prod-twin", secret=look_alike(served))
    _, new = project.mint("prod-20261125")
    done = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    assert done.returncode == 0, done.stdout + done.stderr
    assert project.status_of(served) == "active" and project.status_of(twin) == "active"
    assert "never identified" in done.stdout
