"""Search algorithms over the models' outputs, usable as a library: CTC greedy and prefix beam search
(ctc_search), the transducer's greedy, Graves and modified beam searches (transducer_search), shallow fusion with
a phone LM (lm), best-path alignments (alignment), and each model type's searches by name (searches), which the
decode stage (:mod:`asrkit.decoding.decode`), transcription and the dev evaluation run. The models import none of
them."""

#: the search and beam width that transcription and the decode stage use unless told otherwise
DEFAULT_METHOD, DEFAULT_BEAM = "greedy", 10
