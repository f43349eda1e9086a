import pickle

import pytest
import torch
from safetensors.torch import load_file

from diffpose3d.bundle import export_bundle, load_bundle, save_bundle
from diffpose3d.config import load_config
from diffpose3d.errors import InputFileError
from diffpose3d.model import DiffPoseModel


class _Payload:
    def __reduce__(self):  # what a crafted checkpoint would run on unpickling
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


@pytest.fixture()
def bundle(tmp_path):
    cfg = load_config(None, ["model.denoiser.width=8", "model.denoiser.blocks=1", "model.encoder.width=8",
                             "model.encoder.blocks=1"])
    torch.manual_seed(0)
    model = DiffPoseModel(cfg)
    save_bundle(model, cfg, tmp_path / "b", {"x": 1})
    return tmp_path / "b", model


def test_round_trip_is_exact(bundle):
    folder, model = bundle
    loaded, info = load_bundle(folder)
    assert info == {"x": 1}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_a_half_precision_export_halves_the_file_and_loads_back_within_rounding(bundle, tmp_path):
    folder, model = bundle
    half = export_bundle(folder, tmp_path / "half")
    stored = load_file(str(half / "model.safetensors"))
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    loaded, info = load_bundle(half)
    assert info == {"x": 1, "weights_dtype": "float16"}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert b.dtype == a.dtype, k
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4, msg=k)


def test_storing_a_calibration_keeps_an_exported_bundles_type_and_readable_files(bundle, tmp_path):
    import os
    import stat

    from diffpose3d.bundle import store_conformal

    folder, _ = bundle
    half = export_bundle(folder, tmp_path / "half")
    model, info = load_bundle(half)
    model.conformal_scale.fill_(1.25)
    store_conformal(model, half, info, {"level": 0.9})
    stored = load_file(str(half / "model.safetensors"))
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    assert float(load_bundle(half)[0].conformal_scale[0]) == 1.25
    mask = os.umask(0)
    os.umask(mask)
    for name in ("model.safetensors", "config.yaml", "info.json"):
        assert stat.S_IMODE((half / name).stat().st_mode) == 0o666 & ~mask, name


def test_a_pickle_in_place_of_the_weights_is_refused_and_never_run(bundle, tmp_path, monkeypatch):
    folder, _ = bundle
    monkeypatch.chdir(tmp_path)
    (folder / "model.safetensors").write_bytes(pickle.dumps(_Payload()))
    torch.save({"x": _Payload()}, folder / "extra.pt")  # a torch pickle lying beside it is ignored
    with pytest.raises(InputFileError, match="model.safetensors"):
        load_bundle(folder)
    assert not (tmp_path / "PWNED").exists()


def test_missing_and_mismatched_bundles(bundle, tmp_path):
    folder, _ = bundle
    with pytest.raises(InputFileError, match="checkpoint not found"):
        load_bundle(tmp_path / "nope")
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text().replace("width: 8", "width: 16"))
    with pytest.raises(InputFileError, match="do not match"):
        load_bundle(folder)
    (folder / "config.yaml").unlink()
    with pytest.raises(InputFileError, match="missing"):
        load_bundle(folder)


def test_packaged_bundles_load_by_name(tmp_path, monkeypatch):
    from diffpose3d.bundle import default_checkpoint, packaged_models, resolve_checkpoint

    assert set(packaged_models()) >= {"h36m_frame", "h36m_video", "humaneva_frame", "humaneva_video"}
    assert resolve_checkpoint(None) == default_checkpoint() == packaged_models()["h36m_frame"]
    frame, _ = load_bundle("humaneva_frame")
    video, _ = load_bundle("humaneva_video")
    assert not frame.is_video and video.is_video
    # a folder of that name in the working directory wins over the packaged bundle
    monkeypatch.chdir(tmp_path)
    (tmp_path / "humaneva_video").mkdir()
    with pytest.raises(InputFileError, match="model.safetensors"):
        load_bundle("humaneva_video")
    with pytest.raises(InputFileError, match="no_such_model"):
        load_bundle("no_such_model")
