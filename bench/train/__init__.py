"""Training small causal language models on pencilbench data (needs the ``train`` extra).

``tokenizer`` builds a word-level tokenizer from the tasks' declared vocabularies, ``presets``
builds a standard transformers model from a named configuration, ``data`` turns records into
CoT or PENCIL training examples, and ``loop`` trains, checkpoints, resumes and evaluates.
"""
