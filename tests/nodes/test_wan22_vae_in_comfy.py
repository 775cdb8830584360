"""ComfyUI's own Wan 2.2 VAE (``comfy/ldm/wan/vae2_2.py`` ``WanVAE``, which ``comfy/sd.py`` builds for a file with
the Wan 2.2 VAE's nested up blocks) reads the file the tests write for TI2V-5B strictly, and each side's whole
path gives the same: ComfyUI's ``Wan22`` latent format (its own 48 means and stds), its module and its VAE
wrapper's mapping to [0, 1] against the pack's loaded model's ``decode_latents`` / ``encode_video``."""

import pytest
import torch
from einops import rearrange

from support.wan_files import write_wan_files


def comfy_wan22_vae(dim: int, dec_dim: int):
    """ComfyUI's Wan 2.2 VAE as ``comfy/sd.py`` configures it (z_dim 48, ×1/2/4/4, 2 residual blocks, no
    attention levels, time down in the last two levels; width 160, decoder width the module's default 256),
    at the widths given."""
    from comfy.ldm.wan.vae2_2 import WanVAE

    return WanVAE(dim=dim, dec_dim=dec_dim, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                  temperal_downsample=[False, True, True], dropout=0.0)


@pytest.fixture(scope="module")
def wan22(pack, tmp_path_factory):
    """The tiny TI2V-5B-kind files and the pack's model loaded from them (fp32), as Load Video Model loads them."""
    backbones = __import__(f"{pack.__name__}.motion_core.backbones", fromlist=["load_backbone", "ModelOptions"])
    written = write_wan_files(tmp_path_factory.mktemp("wan22-in-comfy"), wan22=True)
    parts = {name: written["files"][name] for name in ("vae", "text_encoder", "configs")}
    loaded = backbones.load_backbone(written["files"]["model"], backbones.ModelOptions(dtype="fp32", device="cpu"),
                                     "model", parts)
    return written, loaded


def test_comfyuis_wan22_vae_decodes_and_encodes_the_written_file_as_the_pack_does(pack, wan22):
    import comfy.latent_formats
    from safetensors.torch import load_file

    testing = __import__(f"{pack.__name__}.motion_core.testing", fromlist=["moving_square_frames"])
    written, loaded = wan22
    theirs = comfy_wan22_vae(4, 8).eval()
    theirs.load_state_dict(load_file(written["files"]["vae"]), strict=True)
    space = comfy.latent_formats.Wan22()
    latents = torch.randn(1, 48, 3, 2, 4, generator=torch.Generator().manual_seed(0))  # normalised, as sampled
    frames = testing.moving_square_frames(9, 64, 32)
    with torch.no_grad():
        comfy_frames = (theirs.decode(space.process_out(latents)) + 1).div(2).clamp(0, 1)  # VAE.process_output
        comfy_latents = space.process_in(theirs.encode(rearrange(frames, "f h w rgb -> 1 rgb f h w") * 2 - 1))
        ours = loaded.decode_latents(latents)
    assert ours.shape == (9, 32, 64, 3)
    # their norms and attention round differently from diffusers' (< 1e-6 measured on these tiny models)
    torch.testing.assert_close(ours, rearrange(comfy_frames, "1 rgb f h w -> f h w rgb"), rtol=0, atol=1e-5)
    encoded = loaded.encode_video(frames)
    assert encoded.shape == comfy_latents.shape == (1, 48, 3, 2, 4)
    torch.testing.assert_close(encoded, comfy_latents, rtol=0, atol=1e-5)
    assert (loaded.latent_scale(), loaded.pixel_multiple(), loaded.latent_format) == (16, 32, "Wan22")
