"""The lines ``affectreason data`` prints after a build: counts, issues, labels, tokens, modalities, teacher."""

from __future__ import annotations

from pathlib import Path


def summary_lines(name: str, result, out: Path, issues_shown: int = 5) -> list[str]:
    """What a finished build (``data.build.build_dataset``'s result) reports, one line each."""
    counts = result.manifest["counts"]
    splits = ", ".join(f"{k} {v}" for k, v in counts["splits"].items())
    labels = result.stats["labels"]
    top = ", ".join(f"{k} {v}" for k, v in list(labels["frequencies"].items())[:8])
    tokens = result.stats["tokens"]
    lines = [f"{name}: {counts['records']} records ({splits}) from {counts['rows']} rows; "
             f"{counts['duplicates']} duplicate ids, {counts['incomplete']} incomplete rows, "
             f"{counts['issues']} issues (issues.jsonl)"]
    lines += [f"  {issue}" for issue in result.issues[:issues_shown]]
    lines += [f"labels: {labels['vocabulary_size']} distinct; {top}",
              f"tokens ({tokens['counted_by']}): prompt median {tokens['user']['median']:.0f}, "
              f"target median {tokens['assistant']['median']:.0f} (max {tokens['assistant']['max']})",
              "modalities: " + ", ".join(f"{k} {v:.0%}" for k, v in result.stats["modalities"].items())]
    if "teacher" in result.stats:
        teacher = result.stats["teacher"]
        lines.append(f"teacher: kept {teacher['kept']}/{teacher['asked']} ({teacher['kept_share']:.1%}); "
                     f"{teacher['outcomes']}")
    lines.append(f"written to {out}: " + ", ".join(f"{k}.jsonl" for k in counts["splits"])
                 + ", dataset/, sharegpt/ (dataset_info.json), stats.json, manifest.json")
    return lines
