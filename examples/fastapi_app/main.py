"""A FastAPI app that sends tasks and reads their results without blocking its loop.

    uvicorn main:app                      # the web app
    celeriac -A tasks worker -l info      # the worker, in another terminal

``await task.adelay(...)`` publishes from the request's event loop; ``await
result.aget(timeout=...)`` waits for the result there too. The connections these open
belong to the app's loop and are closed when the app shuts down (the lifespan's
``await celery_app.aclose()``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from tasks import add, celery_app, fail, word_count

from celeriac import TimeoutError as TaskTimeout


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await celery_app.aclose()  # the broker and backend connections of this loop


app = FastAPI(title="celeriac + FastAPI", lifespan=lifespan)


class AddRequest(BaseModel):
    x: int
    y: int


class TextRequest(BaseModel):
    text: str


@app.post("/add")
async def enqueue_add(body: AddRequest) -> dict[str, str]:
    """Send the task and answer at once with its id."""
    result = await add.adelay(body.x, body.y)
    return {"task_id": result.id}


@app.post("/add/wait")
async def add_and_wait(body: AddRequest) -> dict[str, Any]:
    """Send the task and wait (without blocking the loop) for its result."""
    result = await add.adelay(body.x, body.y)
    return {"task_id": result.id, "result": await result.aget(timeout=10)}


@app.post("/words")
async def count_words(body: TextRequest) -> dict[str, Any]:
    result = await word_count.adelay(body.text)
    return {"counts": await result.aget(timeout=10)}


@app.post("/fail")
async def enqueue_failure(body: TextRequest) -> dict[str, str]:
    result = await fail.adelay(body.text)
    return {"task_id": result.id}


@app.get("/tasks/{task_id}")
async def task_status(task_id: str, wait: float = 0) -> dict[str, Any]:
    """A task's state and result; ``?wait=5`` waits up to 5 s for it to finish."""
    result = celery_app.AsyncResult(task_id)
    if wait > 0:
        try:
            await result.aget(timeout=wait, propagate=False)
        except TaskTimeout:
            raise HTTPException(status_code=504, detail=f"task {task_id} still "
                                f"{result.state} after {wait:g}s") from None
    value = result.result
    if isinstance(value, BaseException):
        value = f"{type(value).__name__}: {value}"
    return {"task_id": task_id, "state": result.state, "result": value}
