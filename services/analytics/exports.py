"""The province report as an Excel workbook (openpyxl)."""

from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Font

from vuonminh.analytics import queries
from vuonminh.analytics.models import ProvinceKpis


def province_workbook(report: ProvinceKpis) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "Xếp hạng xã"
    sheet.append([f"Báo cáo thương mại điện tử: {report.province_name}", f"{report.from_} – {report.to}"])
    sheet["A1"].font = Font(bold=True)
    sheet.append(list(queries.REPORT_COLUMNS))
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in queries.province_report_rows(report):
        sheet.append(list(row))
    totals = report.totals
    sheet.append(
        ["", "", "Cả tỉnh", totals.orders, totals.items, totals.gmv_vnd, totals.kg_sold, totals.active_sellers]
    )
    for column, width in zip("ABCDEFGH", (6, 8, 28, 10, 10, 16, 14, 10), strict=True):
        sheet.column_dimensions[column].width = width
    for row in sheet.iter_rows(min_row=3, min_col=6, max_col=6):
        row[0].number_format = "#,##0"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
