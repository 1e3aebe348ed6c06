"""The oracle: what TRL's real SFTTrainer + collator feed the model (no training step is run).

Mirrors ../shared/oracle/trl_oracle.py in-process: a tiny random Llama exists only because SFTTrainer
needs a model; the tokenizer is deep-copied because TRL writes pad_token onto it.
"""

import copy
import logging
import os
import tempfile

from sftviz.labels import Options

ROW = "oracle_source_row"


def tiny_model(tok, seed=0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                        max_position_embeddings=8192))


def trl_rows(rows, tok, mode="auto", max_length=1024, packing=False, packing_strategy="bfd", text_field="text"):
    """(records, dropped_source_rows) where each record has input_ids/labels/attention_mask/position_ids."""
    import datasets
    import transformers
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    tok = copy.deepcopy(tok)
    ds = datasets.Dataset.from_list([{**r, ROW: i} for i, r in enumerate(rows)])
    # The SFTConfig a user would write for these options (the flags of each mode come from labels.MODES).
    flags = Options(mode, max_length, packing, packing_strategy, text_field).sft_config
    args = SFTConfig(output_dir=os.path.join(tempfile.gettempdir(), "sftviz_oracle"), report_to="none",
                     use_cpu=True, bf16=False, save_strategy="no", logging_strategy="no", **flags)
    trainer = SFTTrainer(model=tiny_model(tok), args=args, train_dataset=ds, processing_class=tok)
    prepared = trainer.train_dataset
    dropped = None
    if ROW in prepared.column_names:
        dropped = sorted(set(range(len(rows))) - set(prepared[ROW]))
    model_rows = trainer._remove_unused_columns(prepared, description="training")
    records = []
    for i in range(len(model_rows)):
        batch = trainer.data_collator([model_rows[i]])
        records.append({k: batch[k][0].tolist() for k in ("input_ids", "labels", "attention_mask", "position_ids")
                        if k in batch})
    return records, dropped, trainer
