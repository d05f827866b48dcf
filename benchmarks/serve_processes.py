"""The other processes benchmarks/serve.py starts, as scripts for ``python -c``: the endpoint
users write today (b), and the /health probe that runs beside the overload."""

# (b): what users write today. One request, one predict call.
PLAIN_SERVER = """
import sys, torch, uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from tagsure import Tagger
torch.set_num_threads(int(sys.argv[3]))
tagger = Tagger.load(sys.argv[1])
app = FastAPI()
class Body(BaseModel):
    inputs: str
@app.get("/health")
def health():
    return {"status": "ready"}
@app.post("/predict")
def predict(body: Body):
    p = tagger.predict([body.inputs])[0]
    return [{"entity_group": e.label, "score": e.score, "word": e.text, "start": e.start,
             "end": e.end} for e in p.entities]
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


# /health every 100 ms for the given seconds, on a connection of its own; prints the latencies.
PROBE = """
import json, sys, time, httpx
url, seconds, latencies = sys.argv[1], float(sys.argv[2]), []
end = time.perf_counter() + seconds
with httpx.Client(base_url=url, timeout=10) as http:
    while time.perf_counter() < end:
        started = time.perf_counter()
        try:
            http.get("/health")
            latencies.append(time.perf_counter() - started)
        except httpx.HTTPError:
            latencies.append("inf")
        time.sleep(0.1)
print(json.dumps(latencies))
"""
