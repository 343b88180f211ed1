"""Prompt templates (YAML), installed as package data of ``affectreason.prompts``."""
