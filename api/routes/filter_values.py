"""`GET /datasets/{dataset_id}/filter-values/{filter_name}`: the caller's own values of a list filter.

The web page's Accounts and Tags pick-lists come from here; only the token's subject's rows are read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from api.deps import CatalogDep, PrincipalDep
from api.errors import DatasetUnknown, InvalidRequest, ServiceUnavailable
from api.openapi import bearer, errors
from api.schemas import FilterValues
from api.source_lookups import SourceLookupFailed, SourceLookups
from export_engine.errors import CatalogError

router = APIRouter(tags=["datasets"], dependencies=[Depends(bearer)])


def source_lookups(request: Request) -> SourceLookups:
    return request.app.state.source_lookups


@router.get(
    "/datasets/{dataset_id}/filter-values/{filter_name}",
    response_model=FilterValues,
    responses=errors(401, 422, 503),
)
def list_filter_values(
    dataset_id: str,
    filter_name: str,
    request: Request,
    catalog: CatalogDep,
    principal: PrincipalDep,
    q: Annotated[str, Query(max_length=128, description="case-insensitive substring")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> FilterValues:
    try:
        dataset = catalog.get(dataset_id)
    except CatalogError as exc:
        raise DatasetUnknown(str(exc)) from exc
    dataset_filter = dataset.filters.get(filter_name)
    if dataset_filter is None or dataset_filter.kind != "any_of":
        choices = [f.name for f in dataset.filters.values() if f.kind == "any_of"]
        raise InvalidRequest(
            f"dataset {dataset_id!r} has no list filter {filter_name!r}; list filters: "
            f"{', '.join(choices) or 'none'}"
        )
    try:
        values, truncated = source_lookups(request).filter_values(
            dataset, filter_name, owner=principal.subject, search=q, limit=limit
        )
    except SourceLookupFailed as exc:
        raise ServiceUnavailable(
            f"the source database could not list the values; retry later ({exc})"
        ) from exc
    return FilterValues(dataset=dataset_id, filter=filter_name, values=values, truncated=truncated)
