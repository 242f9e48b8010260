"""A tiny random Llama chat model saved as a normal HF folder, for fast offline tests."""

from __future__ import annotations

from pathlib import Path

BOS_TOKEN = "<s>"
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<pad>"
IM_START_TOKEN = "<|im_start|>"

# ChatML-style, like SmolLM2. The {% generation %} markers let TRL's assistant_only_loss find the
# assistant tokens; EOS closes every turn so trained completions learn to stop.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}"
    "{{ message['content'] + '<|im_end|>' }}"
    "{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "Revenue rose 12% year over year while operating margin narrowed to 18.5%.",
    "The company reported net income of $4.2 million, or $0.31 per diluted share.",
    "Free cash flow equals operating cash flow minus capital expenditures.",
    "A bond's price falls when market interest rates rise, and rises when they fall.",
    "The central bank raised the policy rate by 25 basis points to curb inflation.",
    "Earnings before interest, taxes, depreciation and amortization (EBITDA) grew 7%.",
    "Step 1: Compute the return. Step 2: Subtract the risk-free rate. Answer: B",
    "The price-to-earnings ratio is the share price divided by earnings per share.",
    "Gross profit is revenue less the cost of goods sold; gross margin is its ratio.",
    "Total assets equal total liabilities plus shareholders' equity.",
    "The portfolio's Sharpe ratio improved from 0.8 to 1.1 after rebalancing.",
    "Dividends of $0.50 per share were declared, payable on March 15 to holders of record.",
    "Question: What is 2+2? Answer: 4. The answer is correct.",
    '{"verdict": "correct", "reason": "the final answer matches"}',
    '{"verdict": "incorrect", "reason": "step 2 uses the wrong rate"}',
    "Options: A) 5% B) 7% C) 9%. Which is the yield to maturity?",
    "The system prompt says: you are a careful financial analyst. The user asks a question.",
]


def _train_tokenizer(vocab_size: int) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, IM_START_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tokenizer


def build_tiny_model(
    path: Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_attention_heads: int = 4,
    head_dim: int | None = None,
) -> Path:
    """Save a random 2-layer Llama with a trained byte-level BPE chat tokenizer to `path`.

    vLLM on CPU needs a head dim of 64: `hidden_size=128, num_attention_heads=2` gives it.
    `head_dim` defaults to hidden_size // num_attention_heads.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(vocab_size=512),
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START_TOKEN],
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=2,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_attention_heads,
        head_dim=head_dim if head_dim is not None else hidden_size // num_attention_heads,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_replies_short(path: Path, *, eos_probability: float = 0.25) -> Path:
    """Rewrite the tiny model at `path` so that it ends every reply soon: each token is EOS
    with about this probability. A random model otherwise rarely stops before max_tokens, and
    a reply cut there is never judged (tests of what follows a finished reply need this)."""
    import math

    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    eos = tokenizer.eos_token_id
    hidden = model.config.hidden_size
    with torch.no_grad():
        # Residual dimension 0 holds a constant 1 (every embedding has it, no layer writes it),
        # so after the final norm it is about sqrt(hidden); only EOS reads it.
        model.model.embed_tokens.weight[:, 0] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        model.lm_head.weight[:, 0] = 0.0
        others = model.config.vocab_size - 1
        logit = math.log(eos_probability * others / (1 - eos_probability))
        model.lm_head.weight[eos, 0] = logit / math.sqrt(hidden)
    model.save_pretrained(path)
    return path
