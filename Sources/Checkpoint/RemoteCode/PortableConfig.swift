import Foundation

/// What makes a variant load outside this project's runtime. A variant whose blocks are all
/// alike, with a hidden size its head count divides, is a standard `LlamaForCausalLM` with its
/// own sizes, which transformers loads as it is. Any other variant (blocks of different shapes,
/// a block without attention or MLP, a residual that changes width, a hidden size transformers'
/// LLaMA refuses) declares its own architecture, `HubLlamaForCausalLM`, lists its blocks under
/// `hub_layers`, and ships the PyTorch code that runs it beside its config (`auto_map`), so
/// `AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)` loads it. Never a
/// standard architecture name with shapes that do not match it.
public enum PortableConfig {
    public static let architecture = "HubLlamaForCausalLM"
    public static let modelType = "hub_llama"

    /// The config to write, and the code files to write beside it (none for a standard model).
    public static func make(_ config: LlamaConfig) -> (config: LlamaConfig, code: [String: String]) {
        var out = config
        if config.hubLayers == nil && config.hiddenSize % config.numAttentionHeads == 0 {
            out.architectures = ["LlamaForCausalLM"]
            out.modelType = "llama"
            out.autoMap = nil
            return (out, [:])
        }
        out.hubLayers = config.layerShapes
        out.architectures = [architecture]
        out.modelType = modelType
        out.autoMap = ["AutoConfig": "configuration_hub_llama.HubLlamaConfig",
                       "AutoModelForCausalLM": "modeling_hub_llama.HubLlamaForCausalLM"]
        return (out, ["configuration_hub_llama.py": configurationSource, "modeling_hub_llama.py": modelingSource])
    }

    /// The config class: the standard fields plus `hub_layers`.
    public static let configurationSource = #"""
"""Configuration of a Compression Hub variant whose decoder blocks differ in shape.

Compressed models are heterogeneous: a block may keep its own number of attention heads, its own
FFN width, or lose its attention or MLP altogether, and slicing methods change the residual
width inside a block through a shortcut projection. A standard LLaMA config cannot say that,
so such a variant names this architecture and lists every block under `hub_layers`
(documented in Compression Hub's schemas/config-extension.md). Written by hubctl; load with
`AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)`.
"""
from transformers import PretrainedConfig


class HubLlamaConfig(PretrainedConfig):
    model_type = "hub_llama"

    def __init__(self, vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=None, head_dim=None, hidden_act="silu",
                 max_position_embeddings=2048, rms_norm_eps=1e-6, rope_theta=10000.0, rope_scaling=None,
                 tie_word_embeddings=False, hub_layers=None, use_cache=False, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        self.head_dim = head_dim
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.rope_scaling = rope_scaling
        self.hub_layers = hub_layers
        # Generation recomputes the whole sequence at each step: there is no key-value cache
        # for blocks of different shapes here (the hub's own runtime has one).
        self.use_cache = use_cache
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
"""#

    /// The model: each block as its `hub_layers` entry says, computing what the runtime computes
    /// (parity is tested against transformers through this very file).
    public static let modelingSource = #"""
"""A LLaMA whose decoder blocks may differ in shape: what Compression Hub's compressed variants
are. It computes what the hub's own runtime computes, block by block:

    x = embed(tokens)
    for each block:
        if it has attention: x = shortcut_a(x) + o_proj(attention(rmsnorm(x)))   (shortcut_a: identity unless the width changes)
        elif it has a shortcut: x = shortcut_a(x)
        if it has an MLP: x = shortcut_m(x) + down(silu(gate(rmsnorm(x))) * up(rmsnorm(x)))
        elif it has a shortcut: x = shortcut_m(x)
    logits = lm_head(rmsnorm(x))

with rotary grouped-query attention per block (its own head count, key-value heads and head
size). fp32 throughout. Written by hubctl beside config.json; load with
`AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)`.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_hub_llama import HubLlamaConfig


def block_shapes(config):
    """Every block's shape: `hub_layers`, or uniform blocks from the standard fields."""
    if config.hub_layers:
        return [dict(layer) for layer in config.hub_layers]
    head_dim = config.head_dim or config.hidden_size // config.num_attention_heads
    return [dict(input_width=config.hidden_size, attention_heads=config.num_attention_heads,
                 key_value_heads=config.num_key_value_heads, head_dim=head_dim,
                 attention_output_width=config.hidden_size, attention_shortcut=False,
                 intermediate_size=config.intermediate_size, output_width=config.hidden_size, mlp_shortcut=False)
            for _ in range(config.num_hidden_layers)]


def inverse_frequencies(head_dim, theta, scaling):
    """Rotary frequencies θ^(-2i/d), with linear or llama3 scaling, as the runtime computes them."""
    freqs = [1.0 / math.pow(theta, 2 * i / head_dim) for i in range(head_dim // 2)]
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind == "linear":
        freqs = [f / scaling["factor"] for f in freqs]
    elif kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        original = scaling["original_max_position_embeddings"]
        low_wavelength, high_wavelength = original / low, original / high
        scaled = []
        for f in torch.tensor(freqs, dtype=torch.float32).tolist():
            wavelength = 2 * math.pi / f
            if wavelength < high_wavelength:
                scaled.append(f)
            elif wavelength > low_wavelength:
                scaled.append(f / factor)
            else:
                smooth = (original / wavelength - low) / (high - low)
                scaled.append((1 - smooth) * f / factor + smooth * f)
        freqs = scaled
    elif kind != "default":
        raise ValueError(f"rope scaling type {kind!r} is not supported")
    return torch.tensor(freqs, dtype=torch.float32)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class HubRMSNorm(nn.Module):
    def __init__(self, width, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x):
        x32 = x.to(torch.float32)
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class HubAttention(nn.Module):
    """Grouped-query attention of one block (absent when it has no heads), and the block's
    residual shortcut where the attention sublayer changes the residual width."""

    def __init__(self, shape, config):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = shape["attention_heads"], shape["key_value_heads"], shape["head_dim"]
        self.theta, self.scaling = config.rope_theta, config.rope_scaling
        width, out = shape["input_width"], shape["attention_output_width"]
        if self.heads > 0:
            self.q_proj = nn.Linear(width, self.heads * self.head_dim, bias=False)
            self.k_proj = nn.Linear(width, self.kv_heads * self.head_dim, bias=False)
            self.v_proj = nn.Linear(width, self.kv_heads * self.head_dim, bias=False)
            self.o_proj = nn.Linear(self.heads * self.head_dim, out, bias=False)
        self.shortcut = nn.Linear(width, out, bias=False) if shape["attention_shortcut"] else None

    def forward(self, x, positions, allowed):
        batch, length, _ = x.shape
        q = self.q_proj(x).view(batch, length, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        angles = positions.to(torch.float32)[:, None, :, None] * inverse_frequencies(self.head_dim, self.theta, self.scaling).to(x.device)
        cos, sin = torch.cat((angles.cos(), angles.cos()), -1), torch.cat((angles.sin(), angles.sin()), -1)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        group = self.heads // self.kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        attended = torch.softmax(scores.to(torch.float32), dim=-1).to(v.dtype) @ v
        return self.o_proj(attended.transpose(1, 2).reshape(batch, length, self.heads * self.head_dim))


class HubMLP(nn.Module):
    """SwiGLU of one block (absent when its width is 0), and the block's residual shortcut
    where the MLP sublayer changes the residual width."""

    def __init__(self, shape):
        super().__init__()
        self.inner = shape["intermediate_size"]
        width, out = shape["attention_output_width"], shape["output_width"]
        if self.inner > 0:
            self.gate_proj = nn.Linear(width, self.inner, bias=False)
            self.up_proj = nn.Linear(width, self.inner, bias=False)
            self.down_proj = nn.Linear(self.inner, out, bias=False)
        self.shortcut = nn.Linear(width, out, bias=False) if shape["mlp_shortcut"] else None

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class HubBlock(nn.Module):
    def __init__(self, shape, config):
        super().__init__()
        self.self_attn = HubAttention(shape, config)
        self.mlp = HubMLP(shape)
        if self.self_attn.heads > 0:
            self.input_layernorm = HubRMSNorm(shape["input_width"], config.rms_norm_eps)
        if self.mlp.inner > 0:
            self.post_attention_layernorm = HubRMSNorm(shape["attention_output_width"], config.rms_norm_eps)

    def forward(self, x, positions, allowed):
        attention, mlp = self.self_attn, self.mlp
        if attention.heads > 0:
            out = attention(self.input_layernorm(x), positions, allowed)
            x = (attention.shortcut(x) if attention.shortcut is not None else x) + out
        elif attention.shortcut is not None:
            x = attention.shortcut(x)
        if mlp.inner > 0:
            out = mlp(self.post_attention_layernorm(x))
            x = (mlp.shortcut(x) if mlp.shortcut is not None else x) + out
        elif mlp.shortcut is not None:
            x = mlp.shortcut(x)
        return x


class HubLlamaPreTrainedModel(PreTrainedModel):
    config_class = HubLlamaConfig
    base_model_prefix = "model"
    _no_split_modules = ["HubBlock"]


class HubLlamaModel(HubLlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        shapes = block_shapes(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, shapes[0]["input_width"] if shapes else config.hidden_size)
        self.layers = nn.ModuleList(HubBlock(shape, config) for shape in shapes)
        self.norm = HubRMSNorm(shapes[-1]["output_width"] if shapes else config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None):
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        batch, length = x.shape[:2]
        if position_ids is None:
            position_ids = torch.arange(length, device=x.device)[None].expand(batch, length)
        allowed = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()[None, None]
        if attention_mask is not None:
            allowed = allowed & attention_mask[:, None, None, :].to(torch.bool)
        for block in self.layers:
            x = block(x, position_ids, allowed)
        return self.norm(x)


class HubLlamaForCausalLM(HubLlamaPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config):
        super().__init__(config)
        self.model = HubLlamaModel(config)
        shapes = block_shapes(config)
        self.lm_head = nn.Linear(shapes[-1]["output_width"] if shapes else config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def get_output_embeddings(self):
        return self.lm_head

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        # No key-value cache: every generation step runs the whole sequence so far, with
        # positions that skip left padding.
        position_ids = None
        if attention_mask is not None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, labels=None,
                logits_to_keep=0, **kwargs):
        for name in ("cache", "past_key_values"):
            cache = kwargs.get(name)
            if cache is not None and hasattr(cache, "get_seq_length") and cache.get_seq_length() > 0:
                raise ValueError("this model keeps no key-value cache: pass the whole sequence")
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds)
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits)
"""#
}
