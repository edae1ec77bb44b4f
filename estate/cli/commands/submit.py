"""``estate submit``: run training, scoring or a drift check as a Vertex AI custom job (or
write the job as JSON for Cloud Scheduler). Every job runs the training image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from estate.cli.commands._store_args import add_store_argument
from estate.contract.errors import ConfigError
from estate.serving import jobs as vertex


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "submit",
        help="run training (or scoring, or a drift check) as a Vertex AI custom job, or "
        "write the job JSON for Cloud Scheduler",
        description="Build a Vertex AI CustomJob that runs `estate train` (or `estate score`, "
        "`estate monitor`) in the training image (the repository's Dockerfile, which Cloud "
        "Build pushes), and submit it with google-cloud-aiplatform. --dry-run / --write-json "
        "only write the REST body of customJobs.create, which Cloud Scheduler can POST on a "
        "schedule (infra/scheduler.tf).",
    )
    parser.add_argument("--project", required=True, help="Google Cloud project id")
    parser.add_argument("--region", default="us-central1", help="Vertex AI region")
    parser.add_argument(
        "--job",
        choices=["train", "score", "monitor"],
        help="what the job runs (default: score with --score-input, otherwise train)",
    )
    parser.add_argument(
        "--config",
        help="train: data-set config path inside the image, e.g. configs/ames.toml",
    )
    parser.add_argument("--data", help="train: data, gs://bucket/file.csv")
    add_store_argument(
        parser, old="--output", required=True, help="artifact store, gs://bucket/prefix (all jobs)"
    )
    parser.add_argument(
        "--score-input",
        action="append",
        default=[],
        metavar="GS_URI",
        help="score: one job per input file (repeat to shard)",
    )
    parser.add_argument("--score-output-dir", help="score: gs:// folder for the scores")
    parser.add_argument("--model", default="ames", help="score, monitor: model name")
    parser.add_argument("--id-column", help="score: id column of the inputs")
    parser.add_argument(
        "--logs",
        help="monitor: prediction logs, e.g. gs://<logs bucket>/run.googleapis.com/stdout/",
    )
    parser.add_argument(
        "--staging", required=True, help="gs:// folder for job outputs (<staging>/jobs/<run>/)"
    )
    parser.add_argument(
        "--image",
        help="training image; default: the one Cloud Build pushes, "
        + vertex.training_image("PROJECT", "REGION", "NAME_PREFIX"),
    )
    parser.add_argument(
        "--name-prefix",
        default=vertex.DEFAULT_NAME_PREFIX,
        help="Terraform's name_prefix, for the default --image (default %(default)s)",
    )
    parser.add_argument("--machine-type", default=vertex.DEFAULT_MACHINE_TYPE)
    parser.add_argument("--service-account", help="service account the job runs as")
    parser.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE", help="job label (repeat)"
    )
    parser.add_argument("--run-id", help="job run id (default: estate-<UTC time>)")
    parser.add_argument("--dry-run", action="store_true", help="print the job JSON, submit nothing")
    parser.add_argument("--write-json", metavar="FILE", help="write the job JSON to FILE")
    parser.add_argument(
        "--api-endpoint",
        help="override the API host (default <region>-aiplatform.googleapis.com)",
    )
    parser.set_defaults(func=run)


def job_kind(args: argparse.Namespace) -> str:
    """train, score or monitor: --job, or what the other flags imply."""
    kind: str = args.job or ("score" if args.score_input else "train")
    if args.score_input and kind != "score":
        raise ConfigError(f"--score-input is for scoring jobs, not --job {kind}.")
    return kind


def commands_from_args(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(run-id suffix, container args) of each job: one training or monitoring job, or one
    per score shard."""
    kind = job_kind(args)
    if kind == "score":
        if not args.score_input:
            raise ConfigError("Batch scoring needs --score-input gs://bucket/file (repeatable).")
        if not args.score_output_dir:
            raise ConfigError("Batch scoring needs --score-output-dir gs://bucket/folder.")
        return [
            (
                f"-score-{i:03d}",
                vertex.score_command(
                    uri,
                    vertex.shard_output(uri, args.score_output_dir),
                    args.store,
                    args.model,
                    args.id_column,
                ),
            )
            for i, uri in enumerate(args.score_input)
        ]
    if kind == "monitor":
        if not args.logs:
            raise ConfigError(
                "A drift check needs --logs, e.g. gs://<logs bucket>/run.googleapis.com/stdout/ "
                "(where the prediction log sink writes)."
            )
        return [("", vertex.monitor_command(args.logs, args.store, args.model))]
    if not (args.config and args.data):
        raise ConfigError("Training needs --config and --data (or --score-input to score).")
    return [("", vertex.train_command(args.config, args.data, args.store))]


def request_from_args(
    args: argparse.Namespace, command: list[str] | None = None, suffix: str = ""
) -> vertex.JobRequest:
    """The parsed flags as a `vertex.JobRequest` (also used by tests)."""
    run_id = args.run_id or vertex.new_run_id()
    return vertex.JobRequest(
        project=args.project,
        region=args.region,
        command=command or commands_from_args(args)[0][1],
        staging=args.staging,
        image=args.image or vertex.training_image(args.project, args.region, args.name_prefix),
        machine_type=args.machine_type,
        service_account=args.service_account,
        labels={"trigger": "manual", **vertex.parse_labels(args.label)},
        run_id=run_id + suffix,
    )


def run(args: argparse.Namespace) -> int:
    bodies = [
        vertex.build_custom_job(request_from_args(args, command, suffix))
        for suffix, command in commands_from_args(args)
    ]
    text = json.dumps(bodies[0] if len(bodies) == 1 else bodies, indent=2)
    if args.write_json:
        Path(args.write_json).write_text(text + "\n")
        print(f"wrote {args.write_json}: POST it to {vertex.create_url(args.project, args.region)}")
    if args.dry_run:
        print(text)
    if args.dry_run or args.write_json:
        return 0
    for body in bodies:
        created = vertex.submit_custom_job(
            body, args.project, args.region, api_endpoint=args.api_endpoint
        )
        print(f"submitted {created.get('name')} ({created.get('state', 'state unknown')})")
        print(f"outputs: {body['jobSpec']['baseOutputDirectory']['outputUriPrefix']}")
    return 0
