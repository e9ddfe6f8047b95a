"""Sites in the database, versioned: the wiring the administrator draws, and the OCPI EVSEs it lacks.

Every change is one transaction that loads the current site file, applies the change to it,
re-validates the WHOLE site with `grid_models` (so a bad change stores nothing and names every
problem) and stores the result as a new version. Old versions are never rewritten: a plan
records the version it was computed on. `SiteChanged` is published after the commit.

An EVSE a CPO pushes in a Location linked to a site (`ocpi_locations`) but that no site
connector maps to is *unplaced*: the EMS proposes a default wiring for the administrator to
confirm, and gives the planner a worst-case model of it (`conservative_connector`) for as long
as it is not wired, so a session on it is never planned on a guess.

The package re-exports its public names; they live in `versions` (storage, errors, the stored
types), `elements` (element and connector changes) and `unplaced` (proposals, placement and the
worst case), each importing only the ones before it; `diff` compares two versions element by
element; `series` and `forecasts` hold the time series; `groups` the groups of sites (territories) and
the limits from outside, imported as `ems.sites.groups`.
"""

from ems.sites.diff import Difference, diff_site_files, diff_versions
from ems.sites.elements import (
    COLLECTIONS,
    MOVABLE,
    delete_connector,
    delete_element,
    get_connector,
    get_element,
    move_element,
    put_connector,
    put_element,
    put_grid_connection,
)
from ems.sites.unplaced import (
    ACTIVE_SESSION_STATUSES,
    ConservativeConnector,
    Placement,
    Proposal,
    UnplacedEvse,
    conservative_connector,
    place_unplaced,
    propose,
    root_protection,
    unplaced_evses,
    unplaced_of,
    with_conservative_connectors,
)
from ems.sites.versions import (
    MAX_SITE_ID_CHARS,
    PARSED_PER_DATABASE,
    Change,
    SiteConflictError,
    SiteExistsError,
    SiteNotFoundError,
    SiteSummary,
    StoredSite,
    VersionInfo,
    create_site,
    current_site,
    delete_site,
    get_site,
    import_site,
    list_sites,
    list_versions,
    replace_site,
    wiring_stamp,
)

__all__ = [
    "ACTIVE_SESSION_STATUSES",
    "COLLECTIONS",
    "MAX_SITE_ID_CHARS",
    "MOVABLE",
    "PARSED_PER_DATABASE",
    "Change",
    "ConservativeConnector",
    "Difference",
    "Placement",
    "Proposal",
    "SiteConflictError",
    "SiteExistsError",
    "SiteNotFoundError",
    "SiteSummary",
    "StoredSite",
    "UnplacedEvse",
    "VersionInfo",
    "conservative_connector",
    "create_site",
    "current_site",
    "delete_connector",
    "delete_element",
    "delete_site",
    "diff_site_files",
    "diff_versions",
    "get_connector",
    "get_element",
    "get_site",
    "import_site",
    "list_sites",
    "list_versions",
    "move_element",
    "place_unplaced",
    "propose",
    "put_connector",
    "put_element",
    "put_grid_connection",
    "replace_site",
    "root_protection",
    "unplaced_evses",
    "unplaced_of",
    "wiring_stamp",
    "with_conservative_connectors",
]
