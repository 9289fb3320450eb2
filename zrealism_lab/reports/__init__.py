"""Report notebooks: executed with papermill (``execute``), and the helpers the notebooks call (``notebook``)."""
from .execute import (EXECUTED_NAME, KERNEL_NAME, REPORTS, ReportError, ReportResult, export_html, notebook_parameters,
                      notebook_path, notebooks_dir, offline_html, parse_value, published_run_dir, run_report)

__all__ = ["EXECUTED_NAME", "KERNEL_NAME", "REPORTS", "ReportError", "ReportResult", "export_html",
           "notebook_parameters", "notebook_path", "notebooks_dir", "offline_html", "parse_value",
           "published_run_dir", "run_report"]
