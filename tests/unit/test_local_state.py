from pathlib import Path

from streams.local_state import CLEAN_MARKER, close_state_dir, open_state_dir


def _table_file(state_dir: Path) -> Path:
    path = state_dir / "app-data" / "tables" / "order-state-0.db"
    path.parent.mkdir(parents=True)
    path.write_text("rocksdb")
    return path


def test_state_of_a_crashed_worker_is_discarded(tmp_path: Path):
    state_dir = tmp_path / "state"
    table = _table_file(state_dir)
    open_state_dir(state_dir)
    assert not table.exists()
    assert state_dir.is_dir()


def test_state_after_a_clean_stop_is_kept_once(tmp_path: Path):
    state_dir = tmp_path / "state"
    table = _table_file(state_dir)
    close_state_dir(state_dir)
    open_state_dir(state_dir)
    assert table.exists()
    assert not (state_dir / CLEAN_MARKER).exists()
    # This run then crashes: the next start must not trust the state.
    open_state_dir(state_dir)
    assert not table.exists()


def test_a_fresh_state_dir_is_created(tmp_path: Path):
    open_state_dir(tmp_path / "new")
    assert (tmp_path / "new").is_dir()
