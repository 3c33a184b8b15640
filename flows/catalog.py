"""The service catalog and organisation tree as plain data the flows can read."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    """One service residents can ask for, e.g. 陪同就医."""

    id: str
    names: dict[str, str]  # locale -> name

    def name(self, locale: str) -> str:
        """The service's name in `locale`, falling back to Chinese."""
        return self.names.get(locale) or self.names["zh_CN"]


@dataclass(frozen=True)
class Category:
    """One of the five 五为 categories with its services."""

    id: str
    names: dict[str, str]
    services: tuple[Service, ...]
    sensitive: bool = False  # psychological: never broadcast content
    resident_menu: bool = True  # shown in the resident's 求助 menu
    broadcast: bool = True  # new requests as a card in the teams' groups; False: 1:1 to on-duty counsellors only

    def name(self, locale: str) -> str:
        """The category's name in `locale`, falling back to Chinese."""
        return self.names.get(locale) or self.names["zh_CN"]

    def service(self, service_id: str) -> Service | None:
        """The service with this id, if the category has it."""
        return next((s for s in self.services if s.id == service_id), None)


@dataclass(frozen=True)
class Station:
    """A village/community station (站) residents belong to."""

    id: str
    name: str  # full name, e.g. 幸福社区新时代文明实践站
    community: str  # what residents call it, e.g. 幸福社区


@dataclass(frozen=True)
class Catalog:
    """Everything intake needs to know about categories and stations."""

    categories: tuple[Category, ...]
    stations: tuple[Station, ...]

    def category(self, category_id: str | None) -> Category | None:
        """The category with this id."""
        return next((c for c in self.categories if c.id == category_id), None)

    def station(self, station_id: str | None) -> Station | None:
        """The station with this id."""
        return next((s for s in self.stations if s.id == station_id), None)

    def menu_categories(self) -> list[Category]:
        """The categories offered to residents asking for help."""
        return [c for c in self.categories if c.resident_menu]
