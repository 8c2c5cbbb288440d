"""The Python API as a notebook uses it: results as objects, errors as exceptions in Python's words."""

import pytest
import torch

import sheetprop
import trainer
from tests.mnist_fixtures import make_images, write_mnist
from trainer.config import ConfigError
from trainer.run import RunError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(write_mnist(tmp_path_factory.mktemp("mnist")))


def test_build_returns_the_summary_per_learning_rate(tmp_path):
    book = sheetprop.build(learning_rates=[2, 0.5], iterations=100, out=tmp_path / "b.xlsx")
    assert book.path.is_file() and book.learning_rates == [2.0, 0.5]
    assert [s.first_below for s in book.summary] == [59, None]
    assert book.summary[0].start == pytest.approx(0.24251985734837728, rel=1e-12)  # the published E_total(0)
    assert str(book).splitlines()[0].startswith(f"Wrote {tmp_path / 'b.xlsx'} (classic: 2 learning rates × 100")


def test_build_takes_a_network_as_a_dict_and_speaks_python_in_its_errors(tmp_path):
    xor = sheetprop.template.to_dict(sheetprop.load("xor"))
    out = tmp_path / "x.xlsx"
    assert sheetprop.build(xor, learning_rates=[1], iterations=1, out=out).formula_cells > 0
    with pytest.raises(sheetprop.OutputError, match=r"already exists; use force=True to overwrite it"):
        sheetprop.build(xor, out=out)
    with pytest.raises(sheetprop.BuildError, match="repeated learning rate 0.5"):
        sheetprop.build(learning_rates=[0.5, 0.5], out=tmp_path / "y.xlsx")
    with pytest.raises(sheetprop.BuildError, match="finite positive"):
        sheetprop.build(learning_rates=[float("nan")], out=tmp_path / "y.xlsx")
    with pytest.raises(sheetprop.TemplateError, match="layers"):
        sheetprop.build({**xor, "layers": []}, out=tmp_path / "y.xlsx")
    assert not (tmp_path / "y.xlsx").exists()


def test_train_returns_the_run_and_refuses_to_overwrite_it_in_python_words(data, tmp_path):
    run = trainer.train(data_dir=data, epochs=2, batch_size=64, out_dir=str(tmp_path), name="r", progress=False,
                        echo=None)
    assert run.path == tmp_path / "r" and run.epochs == 2 and run.params == 17290
    # the saved model, evaluated by hand on the test files (normalized with the training images' statistics),
    # scores what the run reported
    images, labels = (torch.from_numpy(a) for a in make_images(120, 1))
    train_images = torch.from_numpy(make_images(320, 0)[0]).float()
    x = ((images.float() / 255 - train_images.mean() / 255) / (train_images.std() / 255)).unsqueeze(1)
    model = run.load_model("last")
    with torch.no_grad():
        right = int((model(x).argmax(1) == labels.long()).sum())
    assert not model.training and run.test_accuracy == right / 120 == trainer.load(run.path).test_accuracy
    assert run.history[-1]["test_correct"] == right
    with pytest.raises(RunError, match=rf"continue it with trainer.resume\('{tmp_path / 'r'}'\) or use force=True"):
        trainer.train(data_dir=data, out_dir=str(tmp_path), name="r", echo=None)
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        trainer.train(colour="red")
    with pytest.raises(ConfigError, match="momentum must be"):
        trainer.train(momentum=5.0)


def test_an_interrupted_run_says_how_to_resume_it_and_resumes(data, tmp_path, monkeypatch):
    from trainer import loop

    real = loop.train_epoch

    def stop_in_epoch_2(*args, **kwargs):
        if kwargs["epoch"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr("trainer.session.train_epoch", stop_in_epoch_2)
    with pytest.raises(trainer.Interrupted, match=rf"continue with: trainer.resume\('{tmp_path / 'cut'}'\)"):
        trainer.train(data_dir=data, epochs=3, batch_size=64, out_dir=str(tmp_path), name="cut", progress=False,
                      echo=None, model="tiny")  # the smallest model: this test is about the API
    monkeypatch.undo()
    run = trainer.resume(tmp_path / "cut", progress=False, echo=None)
    assert [h["epoch"] for h in run.history] == [1, 2, 3]


def test_sweep_arguments_are_checked_before_anything_starts(tmp_path):
    with pytest.raises(ConfigError, match="not a list of seeds"):
        trainer.sweep(seeds="3-1", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="takes its seeds from seeds='1-10'"):
        trainer.sweep(seed=3, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="cannot vary device"):
        trainer.sweep(grid={"device": ["cpu"]}, out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
