"""Plots of training: the loss curve and the batch / mini-batch / stochastic comparison."""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_loss(history: Sequence[float], path: str, title: str = "Training loss", ylabel: str = "loss") -> None:
    """Loss against iteration, log scale when it spans more than a decade."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(range(1, len(history) + 1), history, marker="." if len(history) < 60 else None, color="C0",
            label="training loss (mini-batch mean + regularization)")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    if len(history) and min(history) > 0 and max(history) / min(history) > 10:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_compare(curves: dict[str, dict[str, Sequence[float]]], path: str, title: str) -> None:
    """Two panels: full-data loss against iterations and against rows processed, per variant."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), dpi=110)
    styles = [dict(lw=3.0, alpha=0.6), dict(lw=1.5, ls="--"), dict(lw=1.5)]
    for i, (name, c) in enumerate(curves.items()):
        style = styles[i % len(styles)]
        a.plot(c["iteration"], c["loss"], color=f"C{i}", label=name, **style)
        b.plot(c["rows_processed"], c["loss"], color=f"C{i}", label=name, **style)
    a.set_xlabel("iteration")
    b.set_xlabel("rows processed (cumulative, log scale)")
    b.set_xscale("log")
    a.set_title("loss against iterations")
    b.set_title("loss against work (rows processed)")
    _finish(fig, (a, b), title, path)


def _finish(fig, axes, title: str, path: str, legend_size: float | None = None) -> None:
    """Log-scale loss axes with grid and legend; save and close."""
    for ax in axes:
        ax.set_ylabel("training loss on all rows (mean squared error / 2)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=legend_size)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_optimizers(curves: dict[str, dict[str, Sequence[float]]], path: str, title: str) -> None:
    """Two panels: full-data loss against seconds and against iterations, per optimizer."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), dpi=110)
    for i, (name, c) in enumerate(curves.items()):
        a.plot(c["seconds"], c["loss"], color=f"C{i}", label=name, lw=1.6)
        b.plot(c["iteration"], c["loss"], color=f"C{i}", label=name, lw=1.6)
    a.set_xlabel("seconds (blocks built; the curve's own loss evaluations not counted)")
    b.set_xlabel("iteration")
    a.set_title("loss against time")
    b.set_title("loss against iterations")
    _finish(fig, (a, b), title, path, legend_size=8)
