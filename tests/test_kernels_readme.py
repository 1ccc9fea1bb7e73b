"""The README's pytest example of ``verify.assert_gradient`` runs and passes, as written; the
command-line form of the same check exits as the contract says."""

import json
import re
from pathlib import Path

import pytest
import torch

from verify._cli import main

README = (Path(__file__).parent.parent / "README.md").read_text()


def gradient_block():
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S)
              if b.startswith("# test_gradient.py")]  # fmt: skip
    assert len(blocks) == 1
    return blocks[0]


def test_the_readme_pytest_example_passes():
    namespace = {}
    exec(compile(gradient_block(), "README.md:test_gradient.py", "exec"), namespace)  # noqa: S102
    assert namespace["test_grad_logits"]() is None


def test_the_readme_says_what_the_kernel_receives():
    assert "`fn(logits, targets, grad_output) -> grad_logits`" in README
    assert "`softmax-ce verify --closed-form mypackage.kernels:grad_logits\n--framework torch" in README
    said = " ".join(README.split())
    assert ("else windows of `t` positions of two sequences at once (`[2, 2, V]` at V = 262,144)"
            in said)
    from verify._check import MAX_CHUNK_ELEMENTS
    from verify._kernel_plan import Layout, windows

    for batch, length in ((2, 5), (8, 2048), (3, 4096)):  # as it says, whatever B ≥ 2 and T ≥ 2
        cut = windows(Layout(batch * length, 262_144, length), MAX_CHUNK_ELEMENTS)
        assert (cut.sequences, cut.positions) == (2, 2)


KERNEL = '''\
import numpy as np


def right(logits, targets, grad_output):
    z = logits.astype(np.float32)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    grad = p / p.sum(axis=-1, keepdims=True) * targets.sum(axis=-1, keepdims=True) - targets
    return (grad_output * grad).astype(logits.dtype)


def overwrite(logits, targets, grad_output):
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    logits[...] = (p / p.sum(axis=-1, keepdims=True) - targets).astype(logits.dtype)
    return logits
'''


def test_the_cli_reports_a_kernel_that_writes_into_its_logits(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cli_kernel.py").write_text(KERNEL)
    code = main(["verify", "--closed-form", "cli_kernel:overwrite", "--framework", "numpy",
                 "--classes", "10", "--dtypes", "float32", "--scales", "1", "--labels", "onehot",
                 "--samples", "8", "--format", "json", "--quiet"])  # fmt: skip
    cell = json.loads(capsys.readouterr().out)["cells"][0]
    assert code == 1
    assert cell["verdict"] == "disagree"
    (write,) = cell["writes"]
    rows = write["shape"][0]
    assert write == {"input": "logits", "shape": [rows, 10], "changed": rows * 10,
                     "elements": rows * 10, "index": [0, 0]}
    assert cell["explanation"].startswith(f"writes into its input logits [{rows}, 10] (")


@pytest.mark.parametrize("argv, message", [
    (["--framework", "pytorch", "--closed-form", "m:f"],
     "error: --framework: unknown framework 'pytorch'; did you mean 'torch'? (accepted: jax, "
     "torch, numpy)"),
    (["--framework", "torch"], "error: --framework: 'torch' needs --closed-form MODULE:FUNCTION"),
    (["--framework", "numpy", "--device", "cuda", "--closed-form", "m:f"],
     "error: --device: 'cuda' runs torch functions only"),
    (["--framework", "torch", "--device", "cuda", "--closed-form", "m:f"],
     "error: --device: 'cuda' asked for, but torch.cuda.is_available() is False"),
    (["--shape", "2,2,10"], "error: --shape: 2,2,10 holds 4 rows (batch × sequence); at least 5"),
    (["--shape", "2,8,10", "--classes", "10"], "error: --shape: sets the class count (V)"),
    (["--shape", "8"], "error: --shape: expected B,T,V (batch, sequence, vocabulary) or R,V"),
])  # fmt: skip
def test_bad_kernel_flags_are_one_error_line(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["verify", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message) and captured.err.count("\n") == 1


def test_the_cli_checks_llm_shaped_logits(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cli_kernel.py").write_text(KERNEL)
    code = main(["verify", "--closed-form", "cli_kernel:right", "--framework", "numpy",
                 "--shape", "2,4,10", "--dtypes", "float32", "--scales", "1", "--labels",
                 "onehot", "--format", "json", "--quiet"])  # fmt: skip
    cell = json.loads(capsys.readouterr().out)["cells"][0]
    assert code == 0
    assert (cell["classes"], cell["rows"], cell["samples"]) == (10, 8, 4)
    assert cell["worst"]["row"] == 4 * cell["worst"]["batch"] + cell["worst"]["position"]
    assert cell["reproduce"].startswith("softmax-ce verify --shape 2,4,10 --dtypes float32")


def test_a_variant_batch_is_streamed_and_refused_only_where_one_call_does_not_fit(
        capsys, monkeypatch):
    from verify import _limits

    argv = ["verify", "--shape", "8,1024,262144", "--dtypes", "bfloat16", "--closed-form",
            "no_such_module:f", "--framework", "numpy"]  # fmt: skip
    variant = [*argv, "--label-smoothing", "0.1", "--targets", "indices"]
    monkeypatch.setattr(_limits, "available_bytes", lambda: 2 * 2**30)  # 2 GiB
    for args in (variant, argv):  # streamed, variant or not: on to the missing module
        assert main(args) == 2
        assert capsys.readouterr().err.startswith("error: --closed-form: cannot import")
    monkeypatch.setattr(_limits, "available_bytes", lambda: 2**29)  # 512 MiB: not one call
    assert main(variant) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --shape: 8,192 positions × 262,144 classes with a loss "
                          "variant, streamed one call of at most 1,048,576 elements at a time, "
                          "needs about 1.12 GB of memory; 537 MB is available")  # fmt: skip
    assert err.count("\n") == 1
