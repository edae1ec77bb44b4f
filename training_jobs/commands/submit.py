"""``estate submit``: run training as a Vertex AI custom job (or write the job as JSON)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from model_export.errors import ConfigError
from training_jobs import vertex


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "submit",
        help="run training as a Vertex AI custom job, or write the job JSON for Cloud Scheduler",
        description="Build a Vertex AI CustomJob that runs `estate train` in your container "
        "(--image) or from an sdist on the prebuilt training image (--package), and submit "
        "it with google-cloud-aiplatform. --dry-run / --write-json only write the REST body "
        "of customJobs.create, which Cloud Scheduler can POST on a schedule.",
    )
    parser.add_argument("--project", required=True, help="Google Cloud project id")
    parser.add_argument("--region", default="us-central1", help="Vertex AI region")
    parser.add_argument(
        "--config",
        help="training: data-set config path inside the container, e.g. "
        "training_jobs/configs/ames.toml",
    )
    parser.add_argument("--data", help="training: data, gs://bucket/file.csv")
    parser.add_argument("--output", required=True, help="artifact store, gs://bucket/prefix")
    parser.add_argument(
        "--score-input",
        action="append",
        default=[],
        metavar="GS_URI",
        help="batch scoring instead of training: one job per input file (repeat to shard)",
    )
    parser.add_argument("--score-output-dir", help="batch scoring: gs:// folder for the scores")
    parser.add_argument("--model", default="ames", help="batch scoring: model name")
    parser.add_argument("--id-column", help="batch scoring: id column of the inputs")
    parser.add_argument(
        "--staging", required=True, help="gs:// folder for job outputs (<staging>/jobs/<run>/)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="your training container (entry point: estate)")
    source.add_argument("--package", help="gs:// sdist of estate-advisor for the prebuilt image")
    parser.add_argument(
        "--executor-image",
        default=vertex.PREBUILT_EXECUTOR_IMAGE,
        help="prebuilt image that runs --package (default: %(default)s)",
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


def commands_from_args(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(run-id suffix, container args) of each job: one training job, or one per score shard."""
    if args.score_input:
        if not args.score_output_dir:
            raise ConfigError("Batch scoring needs --score-output-dir gs://bucket/folder.")
        return [
            (
                f"-score-{i:03d}",
                vertex.score_command(
                    uri,
                    vertex.shard_output(uri, args.score_output_dir),
                    args.output,
                    args.model,
                    args.id_column,
                ),
            )
            for i, uri in enumerate(args.score_input)
        ]
    if not (args.config and args.data):
        raise ConfigError("Training needs --config and --data (or --score-input to score).")
    return [("", vertex.train_command(args.config, args.data, args.output))]


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
        image=args.image,
        package=args.package,
        executor_image=args.executor_image,
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
