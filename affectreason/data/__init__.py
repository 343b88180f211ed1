"""Instruction data: recipes that read public corpora or your own clips into one record schema.

``affectreason data RECIPE --out DIR`` runs ``build.build_dataset``: tables are read and joined
(``tables``, ``mapping``), chains of thought written (``cot``; cues from clips in ``clips``, a teacher
LLM in ``teacher``), records deduplicated and split by a hash of their group (``splits``), then written
as a ``datasets`` DatasetDict, JSONL per split and a LLaMA-Factory export (``export``) with a report
(``stats``). The record schema is in ``record``; recipes are typed in ``recipe``.
"""
