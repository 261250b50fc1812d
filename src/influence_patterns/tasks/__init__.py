"""Tasks (SVA, RA, SA), the template generator and data loaders."""

from influence_patterns.tasks.instance import Instance
from influence_patterns.tasks.loaders import (
    LoadResult,
    load_data,
    load_instances,
    load_marvin_linzen,
    load_sst2,
    read_sst2,
    save_instances,
)
from influence_patterns.tasks.registry import (
    TASKS,
    TaskSpec,
    get_task,
    list_tasks,
    register_task,
)
from influence_patterns.tasks.templates import (
    TEMPLATE_TASKS,
    TEMPLATES,
    TemplateTask,
    conditions,
    generate,
    template_task,
)

__all__ = [
    "Instance",
    "LoadResult",
    "TASKS",
    "TEMPLATES",
    "TEMPLATE_TASKS",
    "TaskSpec",
    "TemplateTask",
    "conditions",
    "generate",
    "get_task",
    "list_tasks",
    "load_data",
    "load_instances",
    "load_marvin_linzen",
    "load_sst2",
    "read_sst2",
    "register_task",
    "save_instances",
    "template_task",
]
