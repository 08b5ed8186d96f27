"""A streamed answer as the caller holds it: its records, each verified before it is yielded, and the
answer itself (receipt, use restrictions, attempts) once its summary arrived."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from comity.sdk.result import RecordView, Result

__all__ = ["AsyncRecordStream", "RecordStream"]


class _Answer:
    def __init__(self) -> None:
        #: The verified answer without its records (``records`` is empty: they are what the
        #: iteration yields): query id, hit, use restrictions, the receipt and the attempts. None
        #: until the summary arrived, which is before the first record.
        self.result: Result | None = None
        #: Whether the iteration ended with every batch the node signed received and checked.
        self.complete = False


class RecordStream(_Answer, Iterator[RecordView]):
    """What :meth:`Client.stream <comity.sdk.client.Client.stream>` returns: iterate it for the records."""

    def __init__(self) -> None:
        super().__init__()
        self.records: Iterator[RecordView] = iter(())

    def __iter__(self) -> RecordStream:
        return self

    def __next__(self) -> RecordView:
        return next(self.records)


class AsyncRecordStream(_Answer, AsyncIterator[RecordView]):
    """What :meth:`AsyncClient.stream <comity.sdk.client.AsyncClient.stream>` returns: iterate it with
    ``async for`` for the records."""

    def __init__(self) -> None:
        super().__init__()
        self.records: AsyncIterator[RecordView] | None = None

    def __aiter__(self) -> AsyncRecordStream:
        return self

    async def __anext__(self) -> RecordView:
        if self.records is None:
            raise StopAsyncIteration
        return await self.records.__anext__()
