"""``affectreason demo``: a web page over the same explain path as ``affectreason explain``.

``service`` checks an upload (type, size, duration), runs it through ``batch.explain_one`` with the reasoners
configured at startup, draws the cue plot and writes the ``{cues, explanation}`` JSON, and owns the files a
session leaves (deleted when its page closes, after a time limit at the latest, and all at exit); ``view``
renders an explanation as HTML (each observation with its grounding checks and the measured values behind
them); ``app`` is the page (Gradio, served offline) inside a small FastAPI app that asks for the API key.
Nothing here imports Gradio until ``app`` is used, so ``import affectreason.demo`` costs nothing.
"""
