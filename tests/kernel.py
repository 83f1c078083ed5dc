"""Run one cell in a kernel through a Jupyter server's REST and websocket API, as Lab does."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


async def run_cell(
    server_url: str, token: str, code: str, timeout_s: float = 60, kernel: str = "python3"
) -> str:
    """Start a kernel (`kernel`: a kernel spec's name), execute `code`, return what it
    printed (stdout and stderr), delete the kernel."""
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(base_url=server_url, headers=headers, timeout=30) as http:
        kernel = (await http.post("api/kernels", json={"name": kernel})).raise_for_status()
        kernel_id = kernel.json()["id"]
        try:
            ws_url = server_url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
            ws = await websocket_connect(HTTPRequest(ws_url, headers=headers))
            msg_id = uuid.uuid4().hex
            ws.write_message(
                json.dumps(
                    {
                        "header": {
                            "msg_id": msg_id,
                            "msg_type": "execute_request",
                            "username": "test",
                            "session": uuid.uuid4().hex,
                            "version": "5.3",
                            "date": "",
                        },
                        "parent_header": {},
                        "metadata": {},
                        "channel": "shell",
                        "content": {
                            "code": code,
                            "silent": False,
                            "store_history": False,
                            "user_expressions": {},
                            "allow_stdin": False,
                        },
                    }
                )
            )
            out: list[str] = []
            async with asyncio.timeout(timeout_s):
                while True:
                    msg = json.loads(await ws.read_message())
                    if msg.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    kind = msg["msg_type"]
                    if kind == "stream":
                        out.append(msg["content"]["text"])
                    elif kind == "error":
                        raise RuntimeError("\n".join(msg["content"]["traceback"]))
                    elif kind == "status" and msg["content"]["execution_state"] == "idle":
                        break
            ws.close()
            return "".join(out)
        finally:
            await http.delete(f"api/kernels/{kernel_id}")
