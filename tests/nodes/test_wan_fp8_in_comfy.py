"""ComfyUI's own loader reads a scaled-fp8 Wan transformer and UMT5 encoder as the pack does: the weights its
layers give (``convert_weight``, what ComfyUI patches LoRAs onto) are the pack's dequantised weights exactly,
and its modules compute what the pack's do. With the operations each host builds such a file with: 0.3.75's
``scaled_fp8_ops`` (as ``comfy/sd1_clip.py`` builds UMT5 for a ``scaled_fp8`` file), or 0.33's conversion to
its per-layer format (``comfy/utils.py`` ``convert_old_quants``) and ``mixed_precision_ops``."""

import pytest
import torch

from support.wan_files import as_fp8, linear_weights, original_name, transformer_to_original, umt5_to_comfy, \
    write_wan_files
from test_wan_nodes import comfy_modules, umt5_xxl_config


def comfy_scaled_fp8(state: dict[str, torch.Tensor]):
    """The operations this host builds a model of a scaled-fp8 file with, and the state dict it loads into it."""
    import comfy.ops
    import comfy.utils

    if hasattr(comfy.ops, "scaled_fp8_ops"):  # 0.3.75: the marker is read by the detection, then not loaded
        state = {name: tensor for name, tensor in state.items() if name != "scaled_fp8"}
        return comfy.ops.scaled_fp8_ops(fp8_matrix_mult=False, override_dtype=torch.float8_e4m3fn), state
    state, _ = comfy.utils.convert_old_quants(dict(state), "")
    quantised = comfy.utils.detect_layer_quantization(state, "")
    assert quantised, "0.33 reads the old layout as its per-layer fp8 format"
    return comfy.ops.mixed_precision_ops(quantised, torch.float32, full_precision_mm=True), state


@pytest.fixture(scope="module")
def files(pack, tmp_path_factory):
    """The tiny models' scaled-fp8 files, and the pack's model loaded from them (fp32)."""
    from support.original_files import _save

    backbones = __import__(f"{pack.__name__}.motion_core.backbones", fromlist=["load_backbone", "ModelOptions"])
    root = tmp_path_factory.mktemp("wan-fp8-in-comfy")
    written = write_wan_files(root)
    transformer, text_encoder = written["transformer"], written["text_encoder"]
    model = as_fp8(transformer_to_original(transformer), scaled=linear_weights(transformer, original_name))
    text = as_fp8(umt5_to_comfy(text_encoder, written["spiece"]), scaled=linear_weights(text_encoder))
    paths = {"model": _save(root / "diffusion_models" / "tiny-wan_fp8_scaled.safetensors", model),
             "text_encoder": _save(root / "text_encoders" / "tiny-umt5_fp8_e4m3fn_scaled.safetensors", text)}
    parts = {"vae": written["files"]["vae"], "text_encoder": paths["text_encoder"],
             "configs": written["files"]["configs"]}
    loaded = backbones.load_backbone(paths["model"], backbones.ModelOptions(dtype="fp32", device="cpu"), "model",
                                     parts)
    return {"model": model, "text_encoder": text, "loaded": loaded, "vocab": text_encoder.config.vocab_size}


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """ComfyUI loads weights with ``strict=False``; nothing may be missing, and only the ``scale_input``
    scalars (of fp8 matmul, which the CPU never runs) may be left over."""
    result = module.load_state_dict(state, strict=False)
    assert not result.missing_keys and all(key.endswith("scale_input") for key in result.unexpected_keys), result
    return module.eval()


def comfy_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weight each of ComfyUI's quantised linear layers stands for (its ``convert_weight``), by weight name:
    the layers holding fp8 weights (0.3.75) or ``QuantizedTensor`` ones (0.33)."""
    from comfy.quant_ops import QuantizedTensor

    return {f"{name}.weight": layer.convert_weight(layer.weight) for name, layer in module.named_modules()
            if isinstance(getattr(layer, "weight", None), torch.Tensor)
            and (layer.weight.dtype == torch.float8_e4m3fn or isinstance(layer.weight, QuantizedTensor))}


def test_comfyuis_scaled_fp8_wan_transformer_is_the_packs_dequantised_one(files):
    _, WanModel, _, _ = comfy_modules()
    ops, state = comfy_scaled_fp8(files["model"])
    theirs = load_into(WanModel(dim=24, ffn_dim=32, freq_dim=256, text_dim=16, in_dim=16, out_dim=16, num_heads=2,
                                num_layers=2, operations=ops, device="cpu", dtype=torch.float32), state)
    loaded = files["loaded"]
    ours = transformer_to_original(loaded.transformer)
    weights = comfy_weights(theirs)
    assert len(weights) == len([name for name in files["model"] if name.endswith(".scale_weight")]) > 10
    for name, weight in weights.items():
        assert torch.equal(weight.float(), ours[name]), name
    gen = torch.Generator().manual_seed(0)
    x, text = torch.randn(1, 16, 3, 4, 4, generator=gen), torch.randn(1, 7, 16, generator=gen)
    with torch.no_grad():  # ComfyUI scales in its forward (and in float64 RoPE): equal to ~1e-6
        torch.testing.assert_close(theirs(x, torch.tensor([500.0]), text), loaded.call_denoiser(
            loaded.transformer, x, torch.tensor([500.0]), text), rtol=0, atol=1e-5)


def test_comfyuis_scaled_fp8_umt5_is_the_packs_dequantised_one(files):
    _, _, _, T5 = comfy_modules()
    scaled_ops, state = comfy_scaled_fp8({k: v for k, v in files["text_encoder"].items() if k != "spiece_model"})
    config = umt5_xxl_config() | {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 2, "num_heads": 2,
                                  "vocab_size": files["vocab"]}
    theirs = load_into(T5(config, torch.float32, "cpu", scaled_ops), state)
    loaded = files["loaded"]
    ours = loaded.text_encoder.state_dict()
    weights = comfy_weights(theirs)
    assert "encoder.block.1.layer.1.DenseReluDense.wo.weight" in weights
    for name, weight in weights.items():
        assert torch.equal(weight.float(), ours[name]), name
    ids, mask = loaded.tokenizer.tokens(["a red square is moving left"], 512)
    ids = ids[:, : int(mask.sum())]  # the prompt's tokens and </s>, no padding
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids, torch.ones_like(ids))[0], loaded.text_encoder(
            ids, attention_mask=torch.ones_like(ids)).last_hidden_state, rtol=0, atol=1e-5)
