"""One module per protocol: each turns its wire format into DataPlane calls and the
DataPlane's answers back into its wire format.

    v2.py           Open Inference Protocol (V2) REST: health, metadata, index, infer
    v1.py           KServe V1 `:predict`, and `/v1/feedback`
    openai.py       OpenAI-compatible completions and chat completions
    v2_generate.py  the V2 generate extension
    routes.py       the routes table, auth, request ids, error rendering
    common.py       what the protocols share: JSON answers, deadlines, disconnects
"""
