"""The request bodies the manager reads, as dockerd 20.10 (API 1.41) types them, and their checks.

A container's create body is ``runconfig.ContainerConfigWrapper`` and what it
holds (``container.Config`` embedded, ``container.HostConfig`` with
``container.Resources`` embedded, ``network.NetworkingConfig``); networks
and volumes have theirs. Each is written out field by field with the names
Go's errors use. Pointers are left out: Go's decoder looks through them, and
so do its messages. Fields of newer API versions are not listed and pass
through unchecked (gotypes.py).
"""

from __future__ import annotations

from typing import Any

from ..jsontext import shallow
from . import gojson
from .gotypes import (
    BOOL,
    EMPTY_STRUCT,
    INT,
    INT64,
    STR_SLICE,
    STRING,
    STRING_MAP,
    STRINGS,
    UINT,
    UINT16,
    UINT64,
    Array,
    GoTypeError,
    Map,
    Slice,
    String,
    Struct,
    check,
    integer,
    loads,
)

DURATION = integer("time.Duration", 64, signed=True)

HEALTH_CONFIG = Struct(
    "container.HealthConfig",
    "HealthConfig",
    {"Test": STRINGS, "Interval": DURATION, "Timeout": DURATION, "StartPeriod": DURATION, "Retries": INT},
)

CONFIG_FIELDS = {
    "Hostname": STRING,
    "Domainname": STRING,
    "User": STRING,
    "AttachStdin": BOOL,
    "AttachStdout": BOOL,
    "AttachStderr": BOOL,
    "ExposedPorts": Map("nat.PortSet", EMPTY_STRUCT),
    "Tty": BOOL,
    "OpenStdin": BOOL,
    "StdinOnce": BOOL,
    "Env": STRINGS,
    "Cmd": STR_SLICE,
    "Healthcheck": HEALTH_CONFIG,
    "ArgsEscaped": BOOL,
    "Image": STRING,
    "Volumes": Map("map[string]struct {}", EMPTY_STRUCT),
    "WorkingDir": STRING,
    "Entrypoint": STR_SLICE,
    "NetworkDisabled": BOOL,
    "MacAddress": STRING,
    "OnBuild": STRINGS,
    "Labels": STRING_MAP,
    "StopSignal": STRING,
    "StopTimeout": INT,
    "Shell": STR_SLICE,
}


def _devices(short: str, rate: str, kind: Any) -> Slice:
    return Slice(f"[]*blkiodev.{short}", Struct(f"blkiodev.{short}", short, {"Path": STRING, rate: kind}))


ULIMIT = Struct("units.Ulimit", "Ulimit", {"Name": STRING, "Hard": INT64, "Soft": INT64})
PORT_BINDING = Struct("nat.PortBinding", "PortBinding", {"HostIp": STRING, "HostPort": STRING})
_THROTTLE = _devices("ThrottleDevice", "Rate", UINT64)

RESOURCES_FIELDS = {
    "CpuShares": INT64,
    "Memory": INT64,
    "NanoCpus": INT64,
    "CgroupParent": STRING,
    "BlkioWeight": UINT16,
    "BlkioWeightDevice": _devices("WeightDevice", "Weight", UINT16),
    "BlkioDeviceReadBps": _THROTTLE,
    "BlkioDeviceWriteBps": _THROTTLE,
    "BlkioDeviceReadIOps": _THROTTLE,
    "BlkioDeviceWriteIOps": _THROTTLE,
    "CpuPeriod": INT64,
    "CpuQuota": INT64,
    "CpuRealtimePeriod": INT64,
    "CpuRealtimeRuntime": INT64,
    "CpusetCpus": STRING,
    "CpusetMems": STRING,
    "Devices": Slice(
        "[]container.DeviceMapping",
        Struct(
            "container.DeviceMapping",
            "DeviceMapping",
            {"PathOnHost": STRING, "PathInContainer": STRING, "CgroupPermissions": STRING},
        ),
    ),
    "DeviceCgroupRules": STRINGS,
    "DeviceRequests": Slice(
        "[]container.DeviceRequest",
        Struct(
            "container.DeviceRequest",
            "DeviceRequest",
            {
                "Driver": STRING,
                "Count": INT,
                "DeviceIDs": STRINGS,
                "Capabilities": Slice("[][]string", STRINGS),
                "Options": STRING_MAP,
            },
        ),
    ),
    "KernelMemory": INT64,
    "KernelMemoryTCP": INT64,
    "MemoryReservation": INT64,
    "MemorySwap": INT64,
    "MemorySwappiness": INT64,
    "OomKillDisable": BOOL,
    "PidsLimit": INT64,
    "Ulimits": Slice(
        "[]*units.Ulimit", Struct("units.Ulimit", "Ulimit", {"Name": STRING, "Hard": INT64, "Soft": INT64})
    ),
    "CpuCount": INT64,
    "CpuPercent": INT64,
    "IOMaximumIOps": UINT64,
    "IOMaximumBandwidth": UINT64,
}

MOUNT = Struct(
    "mount.Mount",
    "Mount",
    {
        "Type": String("mount.Type"),
        "Source": STRING,
        "Target": STRING,
        "ReadOnly": BOOL,
        "Consistency": String("mount.Consistency"),
        "BindOptions": Struct(
            "mount.BindOptions", "BindOptions", {"Propagation": String("mount.Propagation"), "NonRecursive": BOOL}
        ),
        "VolumeOptions": Struct(
            "mount.VolumeOptions",
            "VolumeOptions",
            {
                "NoCopy": BOOL,
                "Labels": STRING_MAP,
                "DriverConfig": Struct("mount.Driver", "Driver", {"Name": STRING, "Options": STRING_MAP}),
            },
        ),
        "TmpfsOptions": Struct(
            "mount.TmpfsOptions",
            "TmpfsOptions",
            {"SizeBytes": INT64, "Mode": integer("fs.FileMode", 32, signed=False)},
        ),
    },
)

HOST_CONFIG = Struct(
    "container.HostConfig",
    "HostConfig",
    {
        "Binds": STRINGS,
        "ContainerIDFile": STRING,
        "LogConfig": Struct("container.LogConfig", "LogConfig", {"Type": STRING, "Config": STRING_MAP}),
        "NetworkMode": String("container.NetworkMode"),
        "PortBindings": Map(
            "nat.PortMap",
            Slice(
                "[]nat.PortBinding", Struct("nat.PortBinding", "PortBinding", {"HostIp": STRING, "HostPort": STRING})
            ),
        ),
        "RestartPolicy": Struct("container.RestartPolicy", "RestartPolicy", {"Name": STRING, "MaximumRetryCount": INT}),
        "AutoRemove": BOOL,
        "VolumeDriver": STRING,
        "VolumesFrom": STRINGS,
        "CapAdd": STR_SLICE,
        "CapDrop": STR_SLICE,
        "CgroupnsMode": String("container.CgroupnsMode"),
        "Dns": STRINGS,
        "DnsOptions": STRINGS,
        "DnsSearch": STRINGS,
        "ExtraHosts": STRINGS,
        "GroupAdd": STRINGS,
        "IpcMode": String("container.IpcMode"),
        "Cgroup": String("container.CgroupSpec"),
        "Links": STRINGS,
        "OomScoreAdj": INT,
        "PidMode": String("container.PidMode"),
        "Privileged": BOOL,
        "PublishAllPorts": BOOL,
        "ReadonlyRootfs": BOOL,
        "SecurityOpt": STRINGS,
        "StorageOpt": STRING_MAP,
        "Tmpfs": STRING_MAP,
        "UTSMode": String("container.UTSMode"),
        "UsernsMode": String("container.UsernsMode"),
        "ShmSize": INT64,
        "Sysctls": STRING_MAP,
        "Runtime": STRING,
        "ConsoleSize": Array("[2]uint", UINT, 2),
        "Isolation": String("container.Isolation"),
        **RESOURCES_FIELDS,
        "Mounts": Slice("[]mount.Mount", MOUNT),
        "MaskedPaths": STRINGS,
        "ReadonlyPaths": STRINGS,
        "Init": BOOL,
    },
)

ENDPOINT_SETTINGS = Struct(
    "network.EndpointSettings",
    "EndpointSettings",
    {
        "IPAMConfig": Struct(
            "network.EndpointIPAMConfig",
            "EndpointIPAMConfig",
            {"IPv4Address": STRING, "IPv6Address": STRING, "LinkLocalIPs": STRINGS},
        ),
        "Links": STRINGS,
        "Aliases": STRINGS,
        "NetworkID": STRING,
        "EndpointID": STRING,
        "Gateway": STRING,
        "IPAddress": STRING,
        "IPPrefixLen": INT,
        "IPv6Gateway": STRING,
        "GlobalIPv6Address": STRING,
        "GlobalIPv6PrefixLen": INT,
        "MacAddress": STRING,
        "DriverOpts": STRING_MAP,
    },
)

NETWORKING_CONFIG = Struct(
    "network.NetworkingConfig",
    "NetworkingConfig",
    {"EndpointsConfig": Map("map[string]*network.EndpointSettings", ENDPOINT_SETTINGS)},
)

CONTAINER_CONFIG_WRAPPER = Struct(
    "runconfig.ContainerConfigWrapper",
    "ContainerConfigWrapper",
    {**CONFIG_FIELDS, "HostConfig": HOST_CONFIG, "NetworkingConfig": NETWORKING_CONFIG},
)


class BadBody(ValueError):
    """A create body an engine refuses: its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_for_json(content_type: str | None, raw: bytes) -> None:
    """dockerd's ``CheckForJSON``: a body must be sent as ``application/json`` (no type: only without a body)."""
    if not content_type and not raw:
        return
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise BadBody(400, f"Content-Type specified ({content_type or ''}) must be 'application/json'")


def container_config(raw: bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    """The create body as dockerd 20.10 reads it, canonical field names; :class:`BadBody` with its answer.

    - Sent as other than ``application/json``: 400, as ``CheckForJSON`` says.
    - An empty body: 500 ``EOF``; bad JSON: 500 with Go's syntax error
      (only the first value counts: what follows it is not read).
    - A value of the wrong kind anywhere: 500 with Go's type error.
    - No field of ``container.Config`` at all (``{}``, ``null``): 400
      ``Config cannot be empty in order to create a container``.
    - Values nested deeper than the types reach are kept as their text
      (:func:`~swarmctl.jsontext.shallow`), to be passed on as they came.
    """
    check_for_json(content_type, raw)
    try:
        body: Any = shallow(check(loads(raw.decode("utf-8", errors="replace")), CONTAINER_CONFIG_WRAPPER))
    except EOFError:
        raise BadBody(500, "EOF") from None
    except (gojson.GoJSONError, GoTypeError) as exc:
        raise BadBody(500, str(exc)) from None
    if not isinstance(body, dict) or not any(name in body for name in CONFIG_FIELDS):
        raise BadBody(400, "Config cannot be empty in order to create a container")
    return body


IPAM = Struct(
    "network.IPAM",
    "IPAM",
    {
        "Driver": STRING,
        "Options": STRING_MAP,
        "Config": Slice(
            "[]network.IPAMConfig",
            Struct(
                "network.IPAMConfig",
                "IPAMConfig",
                {"Subnet": STRING, "IPRange": STRING, "Gateway": STRING, "AuxiliaryAddresses": STRING_MAP},
            ),
        ),
    },
)

NETWORK_CREATE = Struct(
    "types.NetworkCreateRequest",
    "NetworkCreateRequest",
    {
        "CheckDuplicate": BOOL,
        "Driver": STRING,
        "Scope": STRING,
        "EnableIPv6": BOOL,
        "IPAM": IPAM,
        "Internal": BOOL,
        "Attachable": BOOL,
        "Ingress": BOOL,
        "ConfigOnly": BOOL,
        "ConfigFrom": Struct("network.ConfigReference", "ConfigReference", {"Network": STRING}),
        "Options": STRING_MAP,
        "Labels": STRING_MAP,
        "Name": STRING,
    },
)
NETWORK_CONNECT = Struct(
    "types.NetworkConnect", "NetworkConnect", {"Container": STRING, "EndpointConfig": ENDPOINT_SETTINGS}
)
NETWORK_DISCONNECT = Struct("types.NetworkDisconnect", "NetworkDisconnect", {"Container": STRING, "Force": BOOL})
VOLUME_CREATE = Struct(
    "volume.VolumeCreateBody",
    "VolumeCreateBody",
    {"Driver": STRING, "DriverOpts": STRING_MAP, "Labels": STRING_MAP, "Name": STRING},
)


def body_of(raw: bytes, kind: Struct, content_type: str | None = "application/json") -> dict[str, Any]:
    """A network's or a volume's request body as dockerd reads it; :class:`BadBody` with its 400.

    dockerd reads these with ``httputils.ReadJSON``: every refusal is 400,
    an empty body ``got EOF while reading request body``.
    """
    check_for_json(content_type, raw)
    try:
        body: Any = shallow(check(loads(raw.decode("utf-8", errors="replace")), kind))
    except EOFError:
        raise BadBody(400, "got EOF while reading request body") from None
    except (gojson.GoJSONError, GoTypeError) as exc:
        raise BadBody(400, str(exc)) from None
    return body if isinstance(body, dict) else {}
