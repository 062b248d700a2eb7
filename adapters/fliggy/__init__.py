"""Fliggy (Alibaba) on the Taobao Open Platform: signed TOP calls, orders pulled and confirmed."""

from adapters.fliggy.client import FliggyAdapter

__all__ = ["FliggyAdapter"]
