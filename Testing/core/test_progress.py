import io
import json

import pytest

from u2adcore.errors import Cancelled
from u2adcore.progress import CancelToken, JsonLinesProgress, ProgressEvent, TerminalProgress


def test_jsonl_progress_is_one_parseable_object_per_line():
    buf = io.StringIO()
    cb = JsonLinesProgress(buf)
    cb(ProgressEvent(kind="step", task="adapt", stage="EU-guided", epoch=3, epochs=10, loss=0.01, eta_s=12.5))
    cb(ProgressEvent(kind="epoch", task="adapt", epoch=4, epochs=10))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first == {"event": "progress", "kind": "step", "task": "adapt", "stage": "EU-guided", "epoch": 3,
                     "epochs": 10, "step": 0, "steps": 0, "loss": 0.01, "eta_s": 12.5}


def test_terminal_progress_prints_epoch_loss_and_eta():
    buf = io.StringIO()
    TerminalProgress(buf)(ProgressEvent(kind="epoch", task="pretrain", epoch=1, epochs=4, loss=0.5, eta_s=75, fraction=0.5))
    text = buf.getvalue()
    assert "epoch 2/4" in text and "loss 0.50000" in text and "ETA 01:15" in text and "50.0%" in text


def test_cancel_token():
    token = CancelToken()
    token.check()
    token.cancel()
    assert token.cancelled
    with pytest.raises(Cancelled):
        token.check()


def test_jsonl_progress_follows_redirected_stdout(capsys):
    JsonLinesProgress()(ProgressEvent(kind="epoch", task="pretrain", epoch=1, epochs=2))
    assert json.loads(capsys.readouterr().out)["epoch"] == 1
