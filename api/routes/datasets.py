"""`GET /datasets`: the catalog, so clients can discover datasets, columns, filters and formats."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.deps import CatalogDep, PrincipalDep
from api.openapi import bearer, errors
from api.schemas import DatasetList, DatasetView

router = APIRouter(tags=["datasets"], dependencies=[Depends(bearer)])


@router.get("/datasets", response_model=DatasetList, response_model_exclude_none=True, responses=errors(401))
def list_datasets(catalog: CatalogDep, _: PrincipalDep) -> DatasetList:
    return DatasetList(datasets=[DatasetView.from_dataset(catalog.get(name)) for name in catalog.names])
