"""A merge in profile folds the duplicate into the survivor in segment; undo splits it again."""

from __future__ import annotations

from tests.e2e.conftest import new_external_id, row

SQL = "SELECT * FROM segment.customer WHERE customer_external_id = :e"


class TestMerge:
    async def test_segment_follows_merge_and_undo(
        self, profile_api, database, eventually, erase_afterwards
    ):
        survivor, duplicate = new_external_id("e2e-surv"), new_external_id("e2e-dup")
        erase_afterwards += [survivor, duplicate]
        for external_id, city in ((survivor, "Lyon"), (duplicate, "Nice")):
            response = await profile_api.put(f"/v1/customers/{external_id}", json={"city": city})
            assert response.status_code == 201, response.text
        for external_id in (survivor, duplicate):
            await eventually(lambda e=external_id: row(database, SQL, e=e))

        merged = await profile_api.post(
            f"/v1/customers/{survivor}/merge", json={"duplicate_external_id": duplicate}
        )
        assert merged.status_code == 201, merged.text

        async def status(wanted: str):
            found = await row(database, SQL, e=duplicate)
            return found if found and found["status"] == wanted else None

        folded = await eventually(lambda: status("merged"))
        assert folded["merged_into_external_id"] == survivor
        assert folded["city"] == "Nice"  # the duplicate's own fields stay as they were
        kept = await row(database, SQL, e=survivor)
        assert kept is not None
        assert (kept["status"], kept["merged_into_external_id"]) == ("active", None)

        undone = await profile_api.post(f"/v1/merges/{merged.json()['id']}/undo")
        assert undone.status_code == 200, undone.text
        split = await eventually(lambda: status("active"))
        assert split["merged_into_external_id"] is None
