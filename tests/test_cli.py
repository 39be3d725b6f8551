"""The command line: cost, status and error reporting."""

from __future__ import annotations

import json

from click.testing import CliRunner
from tiering_fixtures import fast_config, random_vectors

from tiering.adapters.memory import InMemoryBackend
from tiering.cli import main
from tiering.store import TieredStore


def test_cost_json_shows_saving():
    result = CliRunner().invoke(main, ["cost", "--vectors", "10000000", "--dim", "768", "--json"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["after_usd_per_month"] < document["before_usd_per_month"]
    assert document["prices_dated"]


def test_cost_rejects_bad_fraction():
    result = CliRunner().invoke(main, ["cost", "--vectors", "10", "--dim", "4", "--hot-fraction", "2"])

    assert result.exit_code == 2
    assert "Invalid --hot-fraction 2.0" in result.output


def test_status_of_cold_folder(tmp_path):
    with TieredStore(InMemoryBackend(8, "l2"), tmp_path, config=fast_config()) as store:
        store.upsert(list(range(50)), random_vectors(50, 8))
        store.tier()

    result = CliRunner().invoke(main, ["status", str(tmp_path), "--json"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["live_rows"] == 40
    assert document["segments"] == 1
    assert document["pending_moves"] == 0
    assert document["saved_index"]["rows"] == 40


def test_status_of_empty_folder(tmp_path):
    result = CliRunner().invoke(main, ["status", str(tmp_path)])

    assert result.exit_code == 2
    assert "No cold tier manifest found" in result.output


def test_tier_command_on_qdrant_path(tmp_path):
    from qdrant_client import QdrantClient

    from tiering.adapters.qdrant import QdrantBackend

    with TieredStore(
        QdrantBackend(QdrantClient(path=str(tmp_path / "q")), "c", 8, "l2"), tmp_path / "cold"
    ) as store:
        store.upsert(list(range(100)), random_vectors(100, 8))
    arguments = [
        "tier",
        "--backend-url",
        f"qdrant+local://{tmp_path}/q",
        "--collection",
        "c",
        "--dim",
        "8",
        "--metric",
        "l2",
        "--cold",
        str(tmp_path / "cold"),
        "--min-idle-s",
        "0",
        "--json",
    ]

    planned = CliRunner().invoke(main, [*arguments, "--dry-run"])
    moved = CliRunner().invoke(main, arguments)

    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.stdout)["demote"] == 80
    assert json.loads(planned.stdout)["demoted"] == 0
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["cold_count"] == 80


def test_tier_command_rejects_unknown_backend(tmp_path):
    result = CliRunner().invoke(
        main,
        ["tier", "--backend-url", "redis://x", "--collection", "c", "--dim", "8", "--cold", str(tmp_path)],
    )

    assert result.exit_code == 2
    assert "Unknown backend URL 'redis://x'" in result.output


def test_gc_command_deletes_dead_segments(tmp_path):
    with TieredStore(InMemoryBackend(8, "l2"), tmp_path, config=fast_config()) as store:
        store.upsert(list(range(50)), random_vectors(50, 8))
        store.tier()
        dead_segment = store.cold.manifest.segments[0].key
        store.delete(store.cold.ids())
    arguments = ["gc", str(tmp_path), "--keep-versions", "1", "--grace-period-s", "0", "--json"]

    planned = CliRunner().invoke(main, [*arguments, "--dry-run"])
    kept_by_dry_run = (tmp_path / dead_segment).exists()
    done = CliRunner().invoke(main, arguments)

    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.stdout)["deleted_segments"] == 1
    assert kept_by_dry_run
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["deleted_segments"] == 1
    assert not (tmp_path / dead_segment).exists()


def test_gc_command_rejects_bad_setting(tmp_path):
    result = CliRunner().invoke(main, ["gc", str(tmp_path), "--keep-versions", "0"])

    assert result.exit_code == 2
    assert "keep at least 1 version" in result.output
