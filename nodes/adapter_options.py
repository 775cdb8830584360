"""Nodes that choose how a parameterisation is built (options for Train Motion Adapter), and the node
that stacks adapters for generation."""

from ..motion_core.adapters import LoRAAdapter, MotionEmbeddingAdapter
from ..motion_core.adapters.embeddings import BLOCK_SETS
from ..motion_core.adapters.lora import USES
from ..motion_core.pipeline import scaled_stack, with_parts
from ._comfy import CATEGORY, io, node_id
from .types import Adapter, AdapterOptions


def _options(kind: str, **options) -> dict:
    return {"kind": kind, "options": options}


class LoRAOptions(io.ComfyNode):
    """MotionDirector's LoRA: rank, alpha, dropout, and the spatial LoRA of its dual-path training."""

    @classmethod
    def define_schema(cls):
        defaults = LoRAAdapter.OPTIONS
        return io.Schema(
            node_id=node_id("LoRAOptions"),
            display_name="LoRA Options",
            category=CATEGORY,
            description="Options for Train Motion Adapter with parameterisation 'lora' (MotionDirector): LoRA on "
                        "every temporal transformer's attentions and feed-forward, optionally a spatial LoRA that "
                        "takes the clip's appearance so the temporal one keeps the motion. MotionDirector trains "
                        "at lr 5e-4.",
            inputs=[
                io.Int.Input("rank", default=defaults["rank"], min=1, max=1024,
                             tooltip="LoRA rank (MotionDirector: 32). Lower: smaller files, less capacity."),
                io.Float.Input("alpha", default=defaults["alpha"], min=0.01, max=1024.0, step=1.0,
                               tooltip="LoRA alpha; the update is scaled by alpha/rank (equal to rank: 1)."),
                io.Float.Input("dropout", default=defaults["dropout"], min=0.0, max=0.99, step=0.05,
                               tooltip="Dropout on the LoRA input while training (MotionDirector: 0.1)."),
                io.Boolean.Input("spatial", default=defaults["spatial"],
                                 tooltip="Also train a spatial LoRA on one random frame per step (MotionDirector's "
                                         "dual path). Generation uses it only when Combine Motion Adapters asks."),
                io.Float.Input("spatial_skip_probability", default=defaults["spatial_skip_probability"], min=0.0,
                               max=0.99, step=0.05,
                               tooltip="Chance of skipping the spatial step (MotionDirector: 0.2)."),
                io.Boolean.Input("feed_forward", default=defaults["feed_forward"], optional=True,
                                 tooltip="Also adapt the temporal transformers' feed-forward layers (MotionDirector). "
                                         "Off: attention only — what an AnimateDiff-Evolved motion LoRA can carry "
                                         "(Export Motion LoRA leaves feed-forward layers out)."),
            ],
            outputs=[AdapterOptions.Output("adapter_options", display_name="adapter_options",
                                           tooltip="For Train Motion Adapter.")],
        )

    @classmethod
    def execute(cls, rank, alpha, dropout, spatial, spatial_skip_probability, feed_forward=True) -> io.NodeOutput:
        options = LoRAAdapter.check_options({"rank": rank, "alpha": alpha, "dropout": dropout, "spatial": spatial,
                                             "spatial_skip_probability": spatial_skip_probability,
                                             "feed_forward": feed_forward})
        return io.NodeOutput(_options(LoRAAdapter.kind, **options))


class MotionEmbeddingOptions(io.ComfyNode):
    """Motion Inversion's embeddings: which blocks, how many frame slots, the value embedding's weight."""

    @classmethod
    def define_schema(cls):
        defaults = MotionEmbeddingAdapter.OPTIONS
        return io.Schema(
            node_id=node_id("MotionEmbeddingOptions"),
            display_name="Motion Embedding Options",
            category=CATEGORY,
            description="Options for Train Motion Adapter with parameterisation 'motion_embeddings' (Motion "
                        "Inversion): query-key and value embeddings added inside temporal attention (on Wan: "
                        "inside each block's 3-D self-attention, per frame and position). Motion Inversion "
                        "trains at lr 2e-2. Debiasing is chosen in Generate Video.",
            inputs=[
                io.Combo.Input("blocks", options=list(BLOCK_SETS), default=defaults["blocks"],
                               tooltip="widest: the widest down/up blocks (ZeroScope: the five 1280-channel ones; "
                                       "the paper's default). all: every down/up block (complex motion; ZeroScope "
                                       "at 576x320: 516 M numbers instead of 74 M)."),
                io.Int.Input("frame_slots", default=defaults["frame_slots"], min=1, max=256,
                             tooltip="Frame slots of the embeddings (32): at least the clip's frame count."),
                io.Float.Input("value_weight", default=defaults["value_weight"], min=-10.0, max=10.0, step=0.05,
                               tooltip="gamma: weight of the value embedding (1 as published)."),
                io.Int.Input("value_stride", default=defaults["value_stride"], min=0, max=64, optional=True,
                             tooltip="How much coarser than the attention's grid the value embedding is. 0: "
                                     "auto: 1 (as published) in temporal attention, 4 in Wan's 3-D attention "
                                     "(Wan 1.3B at 832x480x33: 155 M numbers; at 1, 2.3 G)."),
            ],
            outputs=[AdapterOptions.Output("adapter_options", display_name="adapter_options",
                                           tooltip="For Train Motion Adapter.")],
        )

    @classmethod
    def execute(cls, blocks, frame_slots, value_weight, value_stride=0) -> io.NodeOutput:
        options = MotionEmbeddingAdapter.check_options({"blocks": blocks, "frame_slots": frame_slots,
                                                        "value_weight": value_weight, "value_stride": value_stride})
        return io.NodeOutput(_options(MotionEmbeddingAdapter.kind, **options))


def _parts_input(name: str):
    return io.Combo.Input(name, options=list(USES), default="temporal",
                          tooltip="LoRA only: temporal = the motion (what generation normally uses); spatial = "
                                  "the reference's appearance (a LoRA trained with spatial on); both. Other "
                                  "adapters: leave at temporal.")


class CombineMotionAdapters(io.ComfyNode):
    """Apply two adapters (or stacks) together, each with its own strength."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("CombineMotionAdapters"),
            display_name="Combine Motion Adapters",
            category=CATEGORY,
            description="Stacks adapters for Generate Video or Invert Video: two motions mixed, or one motion with "
                        "a spatial LoRA's appearance. Chain this node for more than two. Adapters must come from "
                        "the same model.",
            inputs=[
                Adapter.Input("adapter_a", tooltip="An adapter (or a stack from another Combine)."),
                io.Float.Input("strength_a", default=1.0, min=-10.0, max=10.0, step=0.05,
                               tooltip="1 as trained, 0 off."),
                _parts_input("parts_a"),
                io.Float.Input("strength_b", default=1.0, min=-10.0, max=10.0, step=0.05,
                               tooltip="1 as trained, 0 off."),
                _parts_input("parts_b"),
                Adapter.Input("adapter_b", optional=True, tooltip="A second adapter or stack."),
            ],
            outputs=[Adapter.Output("adapter", display_name="adapter",
                                    tooltip="The stack, for Generate Video or Invert Video.")],
        )

    @classmethod
    def execute(cls, adapter_a, strength_a, parts_a, strength_b, parts_b, adapter_b=None) -> io.NodeOutput:
        stack = with_parts(scaled_stack(adapter_a, strength_a), parts_a, "parts_a")
        stack += with_parts(scaled_stack(adapter_b, strength_b), parts_b, "parts_b")
        return io.NodeOutput(tuple(stack))


NODES = [LoRAOptions, MotionEmbeddingOptions, CombineMotionAdapters]
