"""Roles and permissions over HTTP: checks read live (a grant or a removal holds on the next
request), /roles, PUT /users/{id}/roles, GET /users/me/permissions and the rules on who may
grant what and change whom. Runs on SQLite and (make test-postgres) PostgreSQL."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from tests.helpers import assert_problem
from tests.modules.users.roles_helpers import account, grant, superuser


def _db(app: FastAPI):  # type: ignore[no-untyped-def]
    return app.state.database


async def test_a_grant_and_its_removal_hold_on_the_next_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    _, root = await superuser(client, _db(app))
    ada, user = await account(client, "ada@example.com")
    target = f"/users/{ada['id']}"

    refused = assert_problem(await client.get("/users", headers=user), 403, "FORBIDDEN")
    assert "'users:read'" in refused["detail"]
    assert_problem(await client.get(target, headers=user), 403, "FORBIDDEN")

    created = await client.post(
        "/roles", json={"name": "auditor", "permissions": ["users:read"]}, headers=root
    )
    assert created.status_code == 201, created.text
    assert created.json() == {"name": "auditor", "permissions": ["users:read"]}
    granted = await client.put(f"{target}/roles", json={"roles": ["auditor"]}, headers=root)
    assert granted.status_code == 200, granted.text
    assert granted.json() == {"roles": ["auditor"]}

    # The same access token, issued before the grant: the check reads the roles live.
    listed = await client.get("/users", headers=user)
    assert listed.status_code == 200, listed.text
    assert {u["email"] for u in listed.json()} == {"root@example.com", "ada@example.com"}
    allowed = await client.get(target, headers=user)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["email"] == "ada@example.com"
    # users:read is not users:write.
    assert (
        "'users:write'"
        in assert_problem(
            await client.patch(target, json={"is_verified": True}, headers=user), 403, "FORBIDDEN"
        )["detail"]
    )

    removed = await client.put(f"{target}/roles", json={"roles": []}, headers=root)
    assert removed.json() == {"roles": []}
    assert_problem(await client.get("/users", headers=user), 403, "FORBIDDEN")
    assert_problem(await client.get(target, headers=user), 403, "FORBIDDEN")

    # Deleting the role ends every grant of it at once, too.
    await client.put(f"{target}/roles", json={"roles": ["auditor"]}, headers=root)
    assert (await client.get(target, headers=user)).status_code == 200
    assert (await client.delete("/roles/auditor", headers=root)).status_code == 204
    assert_problem(await client.get("/users", headers=user), 403, "FORBIDDEN")
    assert (await client.get("/users/me/permissions", headers=user)).json() == {
        "roles": [],
        "permissions": [],
    }


async def test_changing_a_roles_permissions_holds_on_the_next_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    _, root = await superuser(client, _db(app))
    ada, user = await account(client, "ada@example.com")
    await grant(client, root, ada["id"], "support", ["roles:read"])
    assert_problem(await client.get(f"/users/{ada['id']}", headers=user), 403, "FORBIDDEN")

    patched = await client.patch(
        "/roles/support", json={"permissions": ["roles:read", "users:read"]}, headers=root
    )
    assert patched.json() == {"name": "support", "permissions": ["roles:read", "users:read"]}
    assert (await client.get(f"/users/{ada['id']}", headers=user)).status_code == 200
    await client.patch("/roles/support", json={"permissions": ["roles:read"]}, headers=root)
    assert_problem(await client.get(f"/users/{ada['id']}", headers=user), 403, "FORBIDDEN")


async def test_my_permissions(app: FastAPI, client: httpx.AsyncClient) -> None:
    root_user, root = await superuser(client, _db(app))
    ada, user = await account(client, "ada@example.com")
    assert (await client.get("/users/me/permissions", headers=user)).json() == {
        "roles": [],
        "permissions": [],
    }
    await client.post("/roles", json={"name": "a", "permissions": ["users:read"]}, headers=root)
    await client.post(
        "/roles", json={"name": "b", "permissions": ["users:read", "roles:read"]}, headers=root
    )
    await client.post("/roles", json={"name": "empty", "permissions": []}, headers=root)
    put = await client.put(
        f"/users/{ada['id']}/roles", json={"roles": ["b", "a", "empty"]}, headers=root
    )
    assert put.json() == {"roles": ["a", "b", "empty"]}
    assert (await client.get("/users/me/permissions", headers=user)).json() == {
        "roles": ["a", "b", "empty"],
        "permissions": ["roles:read", "users:read"],
    }
    # A superuser holds every permission the loaded modules declare.
    mine = (await client.get("/users/me/permissions", headers=root)).json()
    assert mine["roles"] == []
    assert set(mine["permissions"]) == set(app.state.permissions)
    assert {"users:read", "users:write", "roles:read", "roles:write"} <= set(mine["permissions"])
    assert_problem(await client.get("/users/me/permissions"), 401)
    assert root_user["id"] != ada["id"]


async def test_roles_listing_needs_roles_read(app: FastAPI, client: httpx.AsyncClient) -> None:
    _, root = await superuser(client, _db(app))
    ada, user = await account(client, "ada@example.com")
    assert (
        "'roles:read'"
        in assert_problem(await client.get("/roles", headers=user), 403, "FORBIDDEN")["detail"]
    )
    await grant(client, root, ada["id"], "viewer", ["roles:read"])
    await client.post(
        "/roles", json={"name": "auditor", "permissions": ["users:read"]}, headers=root
    )
    listed = await client.get("/roles", headers=user)
    assert listed.status_code == 200
    assert listed.json() == [
        {"name": "auditor", "permissions": ["users:read"]},
        {"name": "viewer", "permissions": ["roles:read"]},
    ]
    # roles:read is not roles:write.
    assert (
        "'roles:write'"
        in assert_problem(
            await client.post("/roles", json={"name": "x", "permissions": []}, headers=user),
            403,
            "FORBIDDEN",
        )["detail"]
    )


async def test_bad_role_writes(app: FastAPI, client: httpx.AsyncClient) -> None:
    _, root = await superuser(client, _db(app))
    ada, _ = await account(client, "ada@example.com")

    unknown = await client.post(
        "/roles",
        json={"name": "billing", "permissions": ["users:read", "billing:refund"]},
        headers=root,
    )
    body = assert_problem(unknown, 422, "VALIDATION_ERROR")
    assert "'billing:refund'" in body["detail"]
    assert body["errors"][0]["loc"] == ["body", "permissions", "1"]
    malformed = await client.post(
        "/roles", json={"name": "x", "permissions": ["Users:Read"]}, headers=root
    )
    assert_problem(malformed, 422, "VALIDATION_ERROR")
    for name in ("Auditor", "", "a" * 65, "has space"):
        bad = await client.post("/roles", json={"name": name, "permissions": []}, headers=root)
        assert_problem(bad, 422, "VALIDATION_ERROR")

    assert (
        await client.post("/roles", json={"name": "auditor", "permissions": []}, headers=root)
    ).status_code == 201
    duplicate = await client.post(
        "/roles", json={"name": "auditor", "permissions": ["users:read"]}, headers=root
    )
    assert_problem(duplicate, 409, "ROLE_ALREADY_EXISTS")
    # The clash changed nothing.
    assert (await client.get("/roles", headers=root)).json() == [
        {"name": "auditor", "permissions": []}
    ]

    assert_problem(
        await client.patch("/roles/nobody", json={"permissions": []}, headers=root),
        404,
        "NOT_FOUND",
    )
    assert_problem(await client.delete("/roles/nobody", headers=root), 404, "NOT_FOUND")
    patch_unknown = await client.patch(
        "/roles/auditor", json={"permissions": ["nope:read"]}, headers=root
    )
    assert "'nope:read'" in assert_problem(patch_unknown, 422, "VALIDATION_ERROR")["detail"]

    no_role = await client.put(
        f"/users/{ada['id']}/roles", json={"roles": ["auditor", "ghost"]}, headers=root
    )
    body = assert_problem(no_role, 422, "VALIDATION_ERROR")
    assert "'ghost'" in body["detail"]
    assert body["errors"][0]["loc"] == ["body", "roles", "1"]
    assert_problem(
        await client.put(f"/users/{uuid.uuid4()}/roles", json={"roles": []}, headers=root),
        404,
        "NOT_FOUND",
    )


async def test_nobody_grants_what_they_do_not_hold(app: FastAPI, client: httpx.AsyncClient) -> None:
    _, root = await superuser(client, _db(app))
    ada, admin = await account(client, "ada@example.com")
    bob, _ = await account(client, "bob@example.com")
    # Ada may manage roles and read accounts, not change them.
    await grant(client, root, ada["id"], "role-admin", ["roles:read", "roles:write", "users:read"])
    await client.post(
        "/roles",
        json={"name": "editor", "permissions": ["users:read", "users:write"]},
        headers=root,
    )

    # Creating a role with a permission she lacks: refused, naming it.
    create = await client.post(
        "/roles", json={"name": "mine", "permissions": ["users:write"]}, headers=admin
    )
    assert "users:write" in assert_problem(create, 403, "FORBIDDEN")["detail"]
    # Within her permissions: fine.
    ok = await client.post(
        "/roles", json={"name": "reader", "permissions": ["users:read"]}, headers=admin
    )
    assert ok.status_code == 201
    # Widening a role, or touching one that grants more than she holds: refused.
    widen = await client.patch(
        "/roles/reader", json={"permissions": ["users:read", "users:write"]}, headers=admin
    )
    assert_problem(widen, 403, "FORBIDDEN")
    narrow = await client.patch("/roles/editor", json={"permissions": []}, headers=admin)
    assert_problem(narrow, 403, "FORBIDDEN")
    assert_problem(await client.delete("/roles/editor", headers=admin), 403, "FORBIDDEN")
    # Granting a role holding more than she holds: refused; one within: fine.
    give = await client.put(f"/users/{bob['id']}/roles", json={"roles": ["editor"]}, headers=admin)
    assert "users:write" in assert_problem(give, 403, "FORBIDDEN")["detail"]
    fine = await client.put(f"/users/{bob['id']}/roles", json={"roles": ["reader"]}, headers=admin)
    assert fine.status_code == 200
    # Nor can she grant it to herself.
    herself = await client.put(
        f"/users/{ada['id']}/roles", json={"roles": ["role-admin", "editor"]}, headers=admin
    )
    assert_problem(herself, 403, "FORBIDDEN")
    # Removing a role she could not grant is refused too.
    await client.put(f"/users/{bob['id']}/roles", json={"roles": ["editor"]}, headers=root)
    take = await client.put(f"/users/{bob['id']}/roles", json={"roles": []}, headers=admin)
    assert_problem(take, 403, "FORBIDDEN")

    roles = {r["name"]: r["permissions"] for r in (await client.get("/roles", headers=root)).json()}
    assert roles["editor"] == ["users:read", "users:write"]
    assert roles["reader"] == ["users:read"]
    bob_roles = await client.put(
        f"/users/{bob['id']}/roles", json={"roles": ["editor"]}, headers=root
    )
    assert bob_roles.json() == {"roles": ["editor"]}


async def test_only_a_superuser_touches_superusers_and_is_superuser(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    root_user, root = await superuser(client, _db(app))
    ada, admin = await account(client, "ada@example.com")
    bob, _ = await account(client, "bob@example.com")
    carol, _ = await account(client, "carol@example.com")
    await grant(client, root, ada["id"], "user-admin", ["users:read", "users:write"])

    # users:write changes ordinary accounts...
    patched = await client.patch(f"/users/{bob['id']}", json={"is_verified": True}, headers=admin)
    assert patched.status_code == 200, patched.text
    assert patched.json()["is_verified"] is True
    # ...but not is_superuser, nor a superuser's account.
    promote = await client.patch(f"/users/{bob['id']}", json={"is_superuser": True}, headers=admin)
    assert_problem(promote, 403, "FORBIDDEN")
    on_root = await client.patch(
        f"/users/{root_user['id']}", json={"is_active": False}, headers=admin
    )
    assert_problem(on_root, 403, "FORBIDDEN")
    assert_problem(
        await client.delete(f"/users/{root_user['id']}", headers=admin), 403, "FORBIDDEN"
    )
    assert (await client.get(f"/users/{bob['id']}", headers=root)).json()["is_superuser"] is False
    assert (await client.get(f"/users/{root_user['id']}", headers=root)).json()["is_active"] is True

    # An account holding a permission she lacks is out of her reach (no takeover by password).
    await grant(client, root, carol["id"], "role-admin", ["roles:write"])
    takeover = await client.patch(
        f"/users/{carol['id']}", json={"password": "another long passphrase"}, headers=admin
    )
    assert "roles:write" in assert_problem(takeover, 403, "FORBIDDEN")["detail"]
    assert_problem(await client.delete(f"/users/{carol['id']}", headers=admin), 403, "FORBIDDEN")

    # A superuser does all of it.
    made = await client.patch(f"/users/{bob['id']}", json={"is_superuser": True}, headers=root)
    assert made.json()["is_superuser"] is True
    assert (await client.delete(f"/users/{bob['id']}", headers=admin)).status_code == 403
    assert (await client.delete(f"/users/{carol['id']}", headers=root)).status_code == 204


async def test_the_last_active_superuser_stays(app: FastAPI, client: httpx.AsyncClient) -> None:
    root_user, root = await superuser(client, _db(app))
    second, other = await superuser(client, _db(app), "second@example.com")

    # The only one deleting itself: refused, nothing changed.
    demoted = await client.patch(
        f"/users/{second['id']}", json={"is_superuser": False}, headers=root
    )
    assert demoted.json()["is_superuser"] is False
    alone = await client.delete(f"/users/{root_user['id']}", headers=root)
    assert_problem(alone, 409, "LAST_SUPERUSER")
    assert (await client.get(f"/users/{root_user['id']}", headers=root)).status_code == 200

    # With a second active one, either may go.
    await client.patch(f"/users/{second['id']}", json={"is_superuser": True}, headers=root)
    deactivated = await client.patch(
        f"/users/{second['id']}", json={"is_active": False}, headers=root
    )
    assert deactivated.json()["is_active"] is False
    # An inactive superuser does not count.
    assert_problem(
        await client.delete(f"/users/{root_user['id']}", headers=root), 409, "LAST_SUPERUSER"
    )
    await client.patch(f"/users/{second['id']}", json={"is_active": True}, headers=root)
    assert (await client.delete(f"/users/{root_user['id']}", headers=root)).status_code == 204
    assert other  # the second's token: its session was ended by the deactivation


async def test_access_tokens_carry_roles_and_scope_as_of_their_issue(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    import jwt

    from tests.helpers import login

    _, _root = await superuser(client, _db(app))
    root_tokens = await login(client, "root@example.com")
    ada, root = await account(client, "ada@example.com")
    before = await login(client, "ada@example.com")
    claims = jwt.decode(before["access_token"], options={"verify_signature": False})
    assert claims["roles"] == [] and claims["scope"] == ""
    await grant(client, _root, ada["id"], "auditor", ["users:read", "roles:read"])
    refreshed = await client.post(
        "/auth/jwt/refresh", json={"refresh_token": before["refresh_token"]}
    )
    claims = jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})
    assert claims["roles"] == ["auditor"]
    assert claims["scope"] == "roles:read users:read"
    superuser_claims = jwt.decode(root_tokens["access_token"], options={"verify_signature": False})
    assert set(superuser_claims["scope"].split()) == set(app.state.permissions)
    assert root
